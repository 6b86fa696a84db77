/*
 * File transfers: PUT writes a temporary file beside the target and renames it into place once
 * the declared size arrived and is synced (a reader never sees half a file); GET streams a file
 * within the host's credit. Binary-safe, any size the filesystem holds: nothing is buffered
 * beyond one frame.
 */

/* "PATH.burrow-put-SESSION": beside the target, so the rename stays on one filesystem. */
static char put_paths[MAX_SESSIONS][2][MAX_PATH_BYTES + 32];

static void file_error(struct session *s, const char *call, const char *path, int err)
{
	struct line what = { .len = 0 };
	put_str(&what, call);
	put_str(&what, " ");
	put_str(&what, path);
	put_str(&what, ": ");
	put_str(&what, errno_name(err < 0 ? -err : err) ? errno_name(err < 0 ? -err : err) : "failed");
	what.text[what.len] = 0;
	send_error(s->id, EC_FILE, what.text, 0);
}

/* The host gave up, or the transfer failed: an upload's temporary file goes. */
static void file_abort(struct session *s)
{
	if (s->kind == S_PUT && s->file_fd >= 0)
		k_unlinkat(AT_FDCWD, put_paths[session_slot(s)][1], 0);
	session_free(s);
}

/* A guest path from a frame: absolute, no NUL, at most MAX_PATH_BYTES; copied NUL-terminated. */
static const char *frame_path(const unsigned char *bytes, u32 len, char *out)
{
	if (len == 0 || len > MAX_PATH_BYTES || bytes[0] != '/')
		return "expected an absolute path of at most " STR(MAX_PATH_BYTES) " bytes";
	for (u32 i = 0; i < len; i++)
		if (!bytes[i])
			return "the path holds a NUL byte";
	memcpy(out, bytes, len);
	out[len] = 0;
	return 0;
}

static void put_request(u32 id, const unsigned char *body, u32 len)
{
	struct session *s;
	const char *problem;
	char *target, *temporary;
	struct line suffix = { .len = 0 };
	if (len < 13)
		return send_error(id, EC_BAD_REQUEST, "PUT: expected u64 size, u32 mode and a path", 0);
	if (!(s = session_new(id, S_PUT)))
		return;
	target = put_paths[session_slot(s)][0];
	temporary = put_paths[session_slot(s)][1];
	if ((problem = frame_path(body + 12, len - 12, target))) {
		send_error(id, EC_BAD_REQUEST, "PUT", problem);
		return session_free(s);
	}
	s->size = get_u64(body);
	s->mode = get_u32(body + 8) & 07777;
	put_str(&suffix, ".burrow-put-");
	put_num(&suffix, (long)id);
	suffix.text[suffix.len] = 0;
	memcpy(temporary, target, str_len(target));
	memcpy(temporary + str_len(target), suffix.text, suffix.len + 1);
	s->file_fd = k_openat(AT_FDCWD, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->file_fd < 0) {
		file_error(s, "open", temporary, s->file_fd);
		s->file_fd = -1;
		return session_free(s);
	}
}

static void put_data(struct session *s, int flags, const unsigned char *body, u32 len)
{
	const char *temporary = put_paths[session_slot(s)][1], *target = put_paths[session_slot(s)][0];
	int ret;
	if ((u64)s->in_unacked + len > PUT_WINDOW_BYTES) {
		send_error(s->id, EC_CREDIT_EXCEEDED, "PUT_DATA beyond the upload's window", "the upload is discarded");
		return file_abort(s);
	}
	if (s->done + len > s->size) {
		send_error(s->id, EC_BAD_REQUEST, "PUT_DATA: more bytes than the declared size", "the upload is discarded");
		return file_abort(s);
	}
	for (u32 off = 0; off < len;) {
		long n = k_write(s->file_fd, body + off, len - off);
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			file_error(s, "write", temporary, n < 0 ? (int)n : -5);
			return file_abort(s);
		}
		off += (u32)n;
	}
	s->done += len;
	/* Written through: the window is free again at once. */
	send_u32(FT_INPUT_CREDIT, s->id, len);
	if (!(flags & FLAG_EOF))
		return;
	if (s->done != s->size) {
		send_error(s->id, EC_BAD_REQUEST, "PUT_DATA: the upload ended short of its declared size", "discarded");
		return file_abort(s);
	}
	if ((ret = k_fsync(s->file_fd)) < 0 || (ret = k_fchmod(s->file_fd, s->mode)) < 0) {
		file_error(s, ret == -1 ? "fchmod" : "fsync", temporary, ret);
		return file_abort(s);
	}
	if ((ret = k_renameat2(AT_FDCWD, temporary, AT_FDCWD, target, 0)) < 0) {
		file_error(s, "rename to", target, ret);
		return file_abort(s);
	}
	unsigned char done[8];
	set_u64(done, s->done);
	send_frame(FT_FILE_DONE, s->id, 0, done, 8);
	say(DEBUG, "session %l: wrote %s (%l bytes)", (long)s->id, target, (long)s->done);
	session_free(s);
}

static void get_request(u32 id, const unsigned char *body, u32 len)
{
	struct session *s;
	const char *problem;
	char *path;
	unsigned char info[12];
	struct statx_k st;
	int ret;
	if (!(s = session_new(id, S_GET)))
		return;
	path = put_paths[session_slot(s)][0];
	if ((problem = frame_path(body, len, path))) {
		send_error(id, EC_BAD_REQUEST, "GET", problem);
		return session_free(s);
	}
	s->file_fd = k_openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK, 0);
	if (s->file_fd < 0) {
		file_error(s, "open", path, s->file_fd);
		s->file_fd = -1;
		return session_free(s);
	}
	if ((ret = k_statx(s->file_fd, &st)) < 0) {
		file_error(s, "statx", path, ret);
		return session_free(s);
	}
	if ((st.mode & S_IFMT) != S_IFREG) {
		send_error(id, EC_FILE, "GET: not a regular file", path);
		return session_free(s);
	}
	s->size = st.size;
	set_u64(info, st.size);
	set_u32(info + 8, st.mode & 07777);
	send_frame(FT_FILE_INFO, id, 0, info, sizeof(info));
}

/* Send what credit and the queue allow; 1 when more could go at once. */
static int get_pump(struct session *s)
{
	unsigned char done[8];
	for (;;) {
		size_t max = s->credit > DATA_CHUNK_BYTES ? DATA_CHUNK_BYTES : (size_t)s->credit;
		if (!max || !data_room() || host_gone)
			return 0;
		long n = send_data_from(s->file_fd, FT_FILE_DATA, s->id, max);
		if (n == -EINTR)
			continue;
		if (n < 0) {
			file_error(s, "read", put_paths[session_slot(s)][0], (int)n);
			session_free(s);
			return 0;
		}
		if (n == 0) {
			set_u64(done, s->done);
			if (send_frame(FT_FILE_DONE, s->id, 0, done, 8) == 0)
				session_free(s);
			return 0;
		}
		s->credit -= (u64)n;
		s->done += (u64)n;
		/* Back to the loop after each chunk: the port is written between chunks. */
		return 1;
	}
}
