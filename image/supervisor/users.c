/*
 * Users for exec sessions: "NAME", "UID" or "UID:GID" resolved against the guest's /etc/passwd
 * and /etc/group as burrow resolves the workload's user (src/workload/users.ts resolveUser):
 * a UID alone takes its passwd entry's group, else gid = uid; the supplementary groups are the
 * primary one and every group that lists the name. Its own file: burrow (Bun) is gone by now.
 */

struct resolved_user {
	u32 uid, gid;
	u32 groups[MAX_GROUPS];
	int ngroups;
	char home[256];
};

/* passwd is read into its own buffer: group lookups reuse file_buffer while an entry is in use. */
static char passwd_buffer[1 << 16];

/* Field `index` (0-based) of a colon-separated line, NUL-terminated in `out`; 0 when missing. */
static int colon_field(const char *line, int index, char *out, size_t size)
{
	size_t n = 0;
	for (; index > 0 && *line && *line != '\n'; line++)
		if (*line == ':')
			index--;
	if (index > 0)
		return 0;
	while (*line && *line != ':' && *line != '\n' && n < size - 1)
		out[n++] = *line++;
	out[n] = 0;
	return 1;
}

static int parse_id(const char *text, u32 *out)
{
	u64 value;
	if (parse_u64(text, 10, &value) || value > 0xfffffffeULL)
		return -1;
	*out = (u32)value;
	return 0;
}

/* The passwd line for `name` (by_uid: the first line with that uid); 0 when none. */
static const char *find_passwd(const char *name, int by_uid, u32 uid)
{
	for (const char *line = passwd_buffer; *line;) {
		char field[256];
		u32 id;
		if (*line != '#' && *line != '+' && *line != '-' && *line != '\n') {
			if (by_uid) {
				if (colon_field(line, 2, field, sizeof(field)) && parse_id(field, &id) == 0 && id == uid)
					return line;
			} else if (colon_field(line, 0, field, sizeof(field)) && str_eq(field, name)) {
				return line;
			}
		}
		while (*line && *line != '\n')
			line++;
		if (*line)
			line++;
	}
	return 0;
}

/* Is `name` in the comma-separated member list `members`? */
static int is_member(const char *members, const char *name)
{
	while (*members) {
		const char *start = members;
		while (*members && *members != ',')
			members++;
		size_t n = (size_t)(members - start), i = 0;
		while (i < n && name[i] && name[i] == start[i])
			i++;
		if (i == n && !name[i])
			return 1;
		if (*members)
			members++;
	}
	return 0;
}

static void add_group(struct resolved_user *user, u32 gid)
{
	for (int i = 0; i < user->ngroups; i++)
		if (user->groups[i] == gid)
			return;
	if (user->ngroups < MAX_GROUPS)
		user->groups[user->ngroups++] = gid;
}

/* 0, or a static text naming why the user cannot be resolved. */
static const char *resolve_user(const char *request, struct resolved_user *user)
{
	char name[256] = "", field[256];
	const char *entry = 0, *colon = request;
	size_t passwd_len;
	int fd = k_open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	passwd_buffer[0] = 0;
	if (fd >= 0) {
		long n = k_read(fd, passwd_buffer, sizeof(passwd_buffer) - 1);
		passwd_len = n > 0 ? (size_t)n : 0;
		passwd_buffer[passwd_len] = 0;
		k_close(fd);
	}
	user->ngroups = 0;
	user->home[0] = 0;
	while (*colon && *colon != ':')
		colon++;
	if (*request >= '0' && *request <= '9') {
		char uid_text[16];
		size_t n = (size_t)(colon - request);
		if (n >= sizeof(uid_text))
			return "a uid is a whole number from 0 to 4294967294";
		memcpy(uid_text, request, n);
		uid_text[n] = 0;
		if (parse_id(uid_text, &user->uid))
			return "a uid is a whole number from 0 to 4294967294";
		entry = find_passwd(0, 1, user->uid);
		if (*colon) {
			if (parse_id(colon + 1, &user->gid))
				return "a gid is a whole number from 0 to 4294967294";
		} else if (!entry || !colon_field(entry, 3, field, sizeof(field)) || parse_id(field, &user->gid)) {
			user->gid = user->uid;
		}
		if (entry)
			colon_field(entry, 0, name, sizeof(name));
	} else {
		if (*colon)
			return "expected NAME, UID or UID:GID";
		entry = find_passwd(request, 0, 0);
		if (!entry)
			return fd < 0 ? "no such user (the guest has no /etc/passwd)" : "no such user in /etc/passwd";
		if (!colon_field(entry, 2, field, sizeof(field)) || parse_id(field, &user->uid) ||
		    !colon_field(entry, 3, field, sizeof(field)) || parse_id(field, &user->gid))
			return "its /etc/passwd line has no valid uid and gid";
		colon_field(request, 0, name, sizeof(name));
	}
	if (entry && colon_field(entry, 5, field, sizeof(field)) && field[0] == '/')
		colon_field(entry, 5, user->home, sizeof(user->home));
	add_group(user, user->gid);
	if (name[0] && read_file("/etc/group") > 0) {
		for (const char *line = file_buffer; *line;) {
			char members[4096];
			u32 gid;
			if (*line != '#' && colon_field(line, 2, field, sizeof(field)) && parse_id(field, &gid) == 0 &&
			    colon_field(line, 3, members, sizeof(members)) && is_member(members, name))
				add_group(user, gid);
			while (*line && *line != '\n')
				line++;
			if (*line)
				line++;
		}
	}
	return 0;
}
