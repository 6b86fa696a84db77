/*
 * The control channel: the one virtio-serial port (burrow.control) the host drives the guest
 * through. Frames in (bounded to one frame: HEADER_BYTES + MAX_BODY_BYTES), frames out (one
 * queue, TX_BYTES; output data never takes its last TX_RESERVE bytes, so answers always fit), and
 * the dispatch of each frame to the sessions, the files and the snapshot code. Layout and numbers
 * are src/control/wire.ts's, generated into wire.h.
 */

#define TX_BYTES (256 * 1024)
/* Room kept for answers (HELLO_ACK, EXITED, ERROR, INFO_REPLY…): output data stops short of it. */
#define TX_RESERVE (16 * 1024)
/* A frame is only taken off the port while its answers surely fit. */
#define ANSWER_ROOM 1024

static const char *control_path;
/* The host side is closed (POLLHUP): the port is not polled until SIGIO says it opened. */
static int host_gone;
static unsigned char rx[HEADER_BYTES + MAX_BODY_BYTES];
static size_t rx_len;
/* After a bad header: bytes are dropped up to the next frame magic, reported once. */
static int rx_resyncing;
static unsigned char tx[TX_BYTES];
static size_t tx_head, tx_tail;
/* Set once a HELLO came: before it, nothing but HELLO, PING and RESUME is served. */
static int host_said_hello;
/* A data frame spliced into the port (send_data_spliced): its header and body bytes still to go. */
static unsigned char splice_head[HEADER_BYTES];
static u32 splice_head_left, splice_left;
/* The body on its way: a pipe of the supervisor's own holding exactly what is left of it. */
static int relay[2] = { -1, -1 };
/* The port took no splice once (not a virtio port or socket): copies from then on. */
static int splice_refused;
/* Below this a copy through tx is cheaper than the extra writes (and coalesces with other frames). */
#define SPLICE_MIN_BYTES 8192

static u32 get_u32(const unsigned char *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 get_u64(const unsigned char *p)
{
	return (u64)get_u32(p) | (u64)get_u32(p + 4) << 32;
}

static void set_u32(unsigned char *p, u32 v)
{
	p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

static void set_u64(unsigned char *p, u64 v)
{
	set_u32(p, (u32)v);
	set_u32(p + 4, (u32)(v >> 32));
}

/*
 * Bytes moved toward the start of a buffer (or anywhere they do not overlap from below), a word
 * at a time: under TCG every guest instruction costs, and a byte loop takes eight times as many.
 */
typedef u64 __attribute__((may_alias, aligned(1))) unaligned_u64;
static void move_down(unsigned char *to, const unsigned char *from, size_t n)
{
	for (; n >= 8; n -= 8, to += 8, from += 8)
		*(unaligned_u64 *)to = *(const unaligned_u64 *)from;
	while (n--)
		*to++ = *from++;
}

static size_t tx_room(void)
{
	if (tx_head == tx_tail) {
		tx_head = tx_tail = 0;
	} else if (tx_head > 0 && tx_tail > TX_BYTES - TX_RESERVE) {
		move_down(tx, tx + tx_head, tx_tail - tx_head);
		tx_tail -= tx_head;
		tx_head = 0;
	}
	return TX_BYTES - tx_tail;
}

static void put_header(unsigned char *at, int type, u32 session, int flags, size_t len)
{
	at[0] = FRAME_MAGIC & 0xff;
	at[1] = FRAME_MAGIC >> 8;
	at[2] = (unsigned char)type;
	at[3] = (unsigned char)flags;
	set_u32(at + 4, session);
	set_u32(at + 8, (u32)len);
}

/* Queue one frame; 0, or -1 when it does not fit now (the caller keeps its state and tries later). */
static int send_frame(int type, u32 session, int flags, const void *body, size_t len)
{
	if (control_fd < 0 || HEADER_BYTES + len > tx_room())
		return -1;
	put_header(tx + tx_tail, type, session, flags, len);
	move_down(tx + tx_tail + HEADER_BYTES, body, len);
	tx_tail += HEADER_BYTES + len;
	return 0;
}

static int send_u32(int type, u32 session, u32 value)
{
	unsigned char body[4];
	set_u32(body, value);
	return send_frame(type, session, 0, body, 4);
}

/* An ERROR frame: the code, then "text: detail". Dropped (and said) when even the reserve is full. */
static void send_error(u32 session, int code, const char *text, const char *detail)
{
	struct line body = { .len = 4 };
	set_u32((unsigned char *)body.text, (u32)code);
	put_str(&body, text);
	if (detail) {
		put_str(&body, ": ");
		put_str(&body, detail);
	}
	if (send_frame(FT_ERROR, session, 0, body.text, body.len) < 0)
		say(WARN, "control: no room to answer session %l: %s", (long)session, body.text + 4);
}

/* How many data bytes a data frame may carry now, leaving the reserve for answers. */
static size_t data_room(void)
{
	size_t room = tx_room();
	if (control_fd < 0 || room < TX_RESERVE + HEADER_BYTES + 1 || splice_head_left || splice_left)
		return 0;
	room -= TX_RESERVE + HEADER_BYTES;
	return room > DATA_CHUNK_BYTES ? DATA_CHUNK_BYTES : room;
}

/* Read up to `max` bytes from fd straight into a data frame. The read's result; a frame only when > 0. */
static long send_data_from(int fd, int type, u32 session, size_t max)
{
	size_t room = data_room();
	long n;
	if (max > room)
		max = room;
	if (!max)
		return -EAGAIN;
	n = k_read(fd, tx + tx_tail + HEADER_BYTES, max);
	if (n > 0) {
		put_header(tx + tx_tail, type, session, 0, (size_t)n);
		tx_tail += HEADER_BYTES + (size_t)n;
	}
	return n;
}

/*
 * A data frame whose body goes from a session's pipe into the port with splice(2): no copy into
 * this process and out again (two of the three copies a byte of output cost, each a byte loop in
 * the guest kernel under TCG). Its header goes first, so its length must be known first: the body
 * is moved (by reference, no copy) from the session's pipe into `relay`, which then holds exactly
 * that frame's body, and is spliced from there into the port. Moving exactly the bytes a pipe
 * holds also keeps clear of virtio_console's splice, which (Linux 6.1) oopses when asked for less
 * than the pipe holds (its scatterlist's end mark stays past the entries it filled). Until the
 * frame is whole nothing else goes into the port; tx waits behind it.
 */
static void relay_close(void)
{
	for (int i = 0; i < 2; i++)
		if (relay[i] >= 0) {
			k_close(relay[i]);
			relay[i] = -1;
		}
}

/* Carry on with the spliced frame; 1 once it is whole (or there is none), 0 while the port is full. */
static int splice_continue(void)
{
	static const unsigned char zeros[4096];
	while (control_fd >= 0 && !host_gone && (splice_head_left || splice_left)) {
		long n;
		if (splice_head_left)
			n = k_write(control_fd, splice_head + HEADER_BYTES - splice_head_left, splice_head_left);
		else if (relay[0] >= 0)
			n = k_splice(relay[0], control_fd, splice_left, 0);
		else
			n = k_write(control_fd, zeros, splice_left < sizeof(zeros) ? splice_left : sizeof(zeros));
		if (n == -EINTR)
			continue;
		if (n == -EAGAIN)
			return 0;
		if (!splice_head_left && relay[0] >= 0 && (n == 0 || n == -EINVAL)) {
			/* The relay held these bytes and the port took none of them: the frame ends in zeros, so the host still reads whole frames. */
			say(WARN, "control: splicing output into the port failed (%e); %l bytes of a frame padded with zeros, output copied from now on",
			    n ? (int)n : EIO, (long)splice_left);
			splice_refused = 1;
			relay_close();
			continue;
		}
		if (n <= 0) {
			host_gone = 1;
			return 0;
		}
		if (splice_head_left)
			splice_head_left -= (u32)n;
		else
			splice_left -= (u32)n;
	}
	return !splice_head_left && !splice_left;
}

/*
 * Frame what `fd` (a session's pipe) holds, up to `max`, and splice it into the port: the bytes
 * framed (counted as sent: the rest follows from channel_flush as the port takes it), or 0 when
 * this is not the way now (too little to be worth it, frames queued before it, a frame still on
 * its way) and the caller copies through tx instead.
 */
static long send_data_spliced(int fd, int type, u32 session, size_t max)
{
	int avail = 0;
	long n;
	if (control_fd < 0 || host_gone || splice_refused || tx_head != tx_tail || splice_head_left || splice_left)
		return 0;
	if (k_ioctl(fd, FIONREAD, (long)&avail) < 0 || avail < SPLICE_MIN_BYTES)
		return 0;
	if (relay[0] < 0) {
		if (k_pipe2(relay, O_CLOEXEC | O_NONBLOCK) < 0)
			return 0;
		/* Room for a whole frame's body whatever the writes that filled the session's pipe (best effort). */
		k_fcntl(relay[1], F_SETPIPE_SZ, OUTPUT_PIPE_BYTES);
	}
	n = k_splice(fd, relay[1], (size_t)avail < max ? (size_t)avail : max, SPLICE_F_NONBLOCK);
	if (n <= 0)
		return 0;
	put_header(splice_head, type, session, 0, (size_t)n);
	splice_head_left = HEADER_BYTES;
	splice_left = (u32)n;
	splice_continue();
	return n;
}

/* Frames queued for a host that is there to take them. */
static int channel_pending(void)
{
	return control_fd >= 0 && !host_gone && (tx_head < tx_tail || splice_head_left || splice_left);
}

/* Write what is queued; stop at EAGAIN. A port whose host went is left alone until SIGIO. */
static void channel_flush(void)
{
	if (!splice_continue())
		return;
	while (control_fd >= 0 && !host_gone && tx_head < tx_tail) {
		long n = k_write(control_fd, tx + tx_head, tx_tail - tx_head);
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			if (n != -EAGAIN)
				host_gone = 1;
			return;
		}
		tx_head += (size_t)n;
	}
	/* Frames left waiting for room to answer them go on as soon as there is room again. */
	if (rx_len >= HEADER_BYTES && tx_room() >= ANSWER_ROOM)
		channel_parse();
}

/*
 * Open the port, non-blocking, with SIGIO on every change (the host connecting, data): no timer
 * while no host is there. PATH "@NAME" is an abstract unix socket (the privileged tests' host).
 */
static int channel_open(const char *path)
{
	int fd;
	control_path = path;
	if (path[0] == '@') {
		unsigned char address[110] = { AF_UNIX & 0xff, AF_UNIX >> 8, 0 };
		size_t n = str_len(path + 1);
		if (n > sizeof(address) - 3)
			return -EINVAL;
		memcpy(address + 3, path + 1, n);
		fd = k_socket(AF_UNIX, SOCK_STREAM | O_CLOEXEC, 0);
		if (fd >= 0) {
			int ret = k_connect(fd, address, 3 + n);
			if (ret < 0) {
				k_close(fd);
				return ret;
			}
		}
	} else {
		fd = k_open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0)
		return fd;
	k_fcntl(fd, F_SETOWN, k_getpid());
	k_fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC);
	control_fd = fd;
	host_gone = 0;
	return 0;
}

/* SIGIO: the port changed; look at it again. */
static void channel_wake(void)
{
	host_gone = 0;
}

static void send_hello_ack(void)
{
	unsigned char body[24];
	set_u32(body, PROTOCOL_VERSION);
	set_u32(body + 4, MAX_SESSIONS);
	set_u32(body + 8, OUTPUT_WINDOW_BYTES);
	set_u32(body + 12, INPUT_WINDOW_BYTES);
	set_u32(body + 16, DATA_CHUNK_BYTES);
	set_u32(body + 20, PUT_WINDOW_BYTES);
	send_frame(FT_HELLO_ACK, 0, 0, body, sizeof(body));
}

/*
 * The supervisor's resident memory in KiB: the pages of its own mappings that are in memory
 * (mincore(2), 4 KiB pages), not VmRSS. Linux 6.1 adds a process's page faults to its VmRSS only
 * every 64 faults (split RSS counting), and a supervisor that starts processes by
 * clone(CLONE_VM) — no copy-on-write faults — takes so few that VmRSS stays near zero.
 */
static u64 resident_kib(void)
{
	static unsigned char vec[1024];
	u64 pages = 0;
	if (read_file("/proc/self/maps") <= 0)
		return 0;
	for (char *line = file_buffer; *line;) {
		char *end = line, *dash = line, *space;
		u64 start = 0, stop = 0;
		while (*end && *end != '\n')
			end++;
		while (dash < end && *dash != '-')
			dash++;
		for (space = dash; space < end && *space != ' '; space++)
			;
		if (dash < end && space < end) {
			char saved_dash = *dash, saved_space = *space;
			*dash = 0, *space = 0;
			int bad = parse_u64(line, 16, &start) || parse_u64(dash + 1, 16, &stop);
			*dash = saved_dash, *space = saved_space;
			/* [vvar] is the kernel's, not this process's memory. */
			for (char *at = space; at < end && !bad; at++)
				if (starts_with(at, "[vvar]") || starts_with(at, "[vsyscall]"))
					bad = 1;
			for (u64 at = start; !bad && at < stop;) {
				u64 len = stop - at > sizeof(vec) * 4096 ? sizeof(vec) * 4096 : stop - at;
				if (k_mincore(at, len, vec) == 0)
					for (u64 i = 0; i < len / 4096; i++)
						pages += vec[i] & 1;
				at += len;
			}
		}
		line = *end ? end + 1 : end;
	}
	return pages * 4;
}

/* Uptime, memory, the workload and the sessions, as one JSON object (src/control/client.ts GuestInfo). */
static void send_info(u32 session)
{
	static struct line info;
	u64 total = 0, available = 0, rss = 0;
	info.len = 0;
	if (read_file("/proc/meminfo") > 0) {
		for (char *line = file_buffer; *line;) {
			char *fields[3];
			char *end = line;
			while (*end && *end != '\n')
				end++;
			int last = !*end;
			*end = 0;
			if (split_fields(line, fields, 3) >= 2) {
				if (str_eq(fields[0], "MemTotal:"))
					parse_u64(fields[1], 10, &total);
				else if (str_eq(fields[0], "MemAvailable:"))
					parse_u64(fields[1], 10, &available);
			}
			line = last ? end : end + 1;
		}
	}
	rss = resident_kib();
	put_str(&info, "{\"workload\":{\"pid\":");
	put_num(&info, workload);
	put_str(&info, ",\"state\":\"");
	put_str(&info, workload_status >= 0 ? "exited" : phase != RUNNING ? "stopping" : workload > 0 ? "running" : opt.start_host ? "waiting" : "starting");
	put_str(&info, "\",\"exitCode\":");
	if (workload_status >= 0)
		put_num(&info, status_code(workload_status));
	else
		put_str(&info, "null");
	put_str(&info, "},\"stopping\":");
	put_str(&info, phase != RUNNING ? "true" : "false");
	put_str(&info, ",\"uptimeMs\":");
	put_num(&info, boottime_ms());
	put_str(&info, ",\"sessions\":");
	put_num(&info, sessions_open());
	put_str(&info, ",\"memory\":{\"totalKiB\":");
	put_num(&info, (long)total);
	put_str(&info, ",\"availableKiB\":");
	put_num(&info, (long)available);
	put_str(&info, "},\"supervisorRssKiB\":");
	put_num(&info, (long)rss);
	put_str(&info, "}");
	send_frame(FT_INFO_REPLY, session, 0, info.text, info.len);
}

/* A new host: whatever the guest still had for the one before (sessions, queued frames) is ended. */
static void host_hello(u32 session, const unsigned char *body, u32 len)
{
	if (len < 4 || get_u32(body) != PROTOCOL_VERSION) {
		send_error(session, EC_VERSION, "HELLO: this guest speaks control protocol 1", 0);
		return;
	}
	end_all_sessions();
	tx_head = tx_tail = 0;
	/* Whatever was left of a spliced frame went to the host before (or nowhere). */
	splice_head_left = splice_left = 0;
	relay_close();
	host_said_hello = 1;
	send_hello_ack();
	snapshot_host_connected();
	/* The new host's own copy: the sessions of before are gone, none comes first. */
	if (workload_status >= 0 && send_u32(FT_WORKLOAD_EXITED, 0, (u32)status_code(workload_status)) == 0)
		workload_exit_unsent = 0;
}

static void host_signal_workload(u32 session, const unsigned char *body, u32 len)
{
	u32 sig = len >= 4 ? get_u32(body) : 0;
	if (len != 4 || sig < 1 || sig > 64) {
		send_error(session, EC_BAD_REQUEST, "SIGNAL_WORKLOAD: expected a u32 signal from 1 to 64", 0);
		return;
	}
	if (workload <= 0 || workload_status >= 0) {
		send_error(session, EC_NOT_NOW, "SIGNAL_WORKLOAD: the workload is not running", 0);
		return;
	}
	int ret = k_kill(workload, (int)sig);
	if (ret < 0) {
		struct line why = { .len = 0 };
		put_str(&why, "kill: ");
		put_str(&why, errno_name(-ret) ? errno_name(-ret) : "failed");
		why.text[why.len] = 0;
		send_error(session, EC_NOT_NOW, "SIGNAL_WORKLOAD", why.text);
		return;
	}
	say(INFO, "signal %l to the workload (pid %d) from the host", (long)sig, workload);
	send_frame(FT_OK, session, 0, 0, 0);
}

static void dispatch(int type, int flags, u32 session, const unsigned char *body, u32 len)
{
	if (type == FT_HELLO)
		return host_hello(session, body, len);
	if (type == FT_PING)
		return (void)send_frame(FT_PONG, session, 0, 0, 0);
	if (type == FT_RESUME)
		return snapshot_resume(session, (const char *)body, len);
	if (!host_said_hello)
		return send_error(session, EC_NOT_NOW, "no HELLO on this connection yet", 0);
	if (point_waiting)
		return send_error(session, EC_NOT_NOW, "the guest waits at its snapshot point for RESUME", 0);
	switch (type) {
	case FT_INFO: return send_info(session);
	case FT_STOP:
		begin_stop(ACT_POWEROFF, "the host's stop request");
		send_frame(FT_OK, session, 0, 0, 0);
		return;
	case FT_SIGNAL_WORKLOAD: return host_signal_workload(session, body, len);
	case FT_EXEC: case FT_STDIN: case FT_RESIZE: case FT_SIGNAL: case FT_CREDIT: case FT_CLOSE:
	case FT_PUT: case FT_PUT_DATA: case FT_GET:
		if (session == 0)
			return send_error(0, EC_BAD_REQUEST, "session 0 is the channel's own; a request needs its own session id", 0);
		return session_frame(type, flags, session, body, len);
	default: {
		struct line what = { .len = 0 };
		put_str(&what, "frame type ");
		put_num(&what, type);
		what.text[what.len] = 0;
		send_error(session, EC_UNKNOWN_TYPE, what.text, "not one the host sends");
	}
	}
}

/* Take every whole frame off rx whose answers fit; a bad header starts a resync. */
static void channel_parse(void)
{
	size_t at = 0;
	while (rx_len - at >= HEADER_BYTES && tx_room() >= ANSWER_ROOM) {
		const unsigned char *head = rx + at;
		u32 len = get_u32(head + 8);
		int bad_magic = head[0] != (FRAME_MAGIC & 0xff) || head[1] != (FRAME_MAGIC >> 8);
		if (bad_magic || len > MAX_BODY_BYTES) {
			if (!rx_resyncing) {
				const char *why = bad_magic ? "bad frame magic" : "a frame body over " STR(MAX_BODY_BYTES) " bytes";
				say(WARN, "control: a malformed frame from the host (%s); skipping to the next frame", why);
				send_error(0, EC_BAD_FRAME, why, "skipped to the next frame");
			}
			rx_resyncing = 1;
			at++;
			while (rx_len - at >= 2 && !(rx[at] == (FRAME_MAGIC & 0xff) && rx[at + 1] == (FRAME_MAGIC >> 8)))
				at++;
			continue;
		}
		if (rx_len - at < HEADER_BYTES + len)
			break;
		rx_resyncing = 0;
		at += HEADER_BYTES + len;
		dispatch(head[2], head[3], get_u32(head + 4), head + HEADER_BYTES, len);
	}
	if (at) {
		move_down(rx, rx + at, rx_len - at);
		rx_len -= at;
	}
}

/*
 * How much to read next: the rest of the frame under way once its header is whole, so no byte is
 * left over to move down (a 64 KiB PUT_DATA arrives a page per read); before that a page (what
 * one read of a virtio port gives at most), which bounds what a frame cut short leaves to move.
 */
static size_t rx_want(void)
{
	size_t room = sizeof(rx) - rx_len;
	if (rx_len >= HEADER_BYTES && !rx_resyncing && rx[0] == (FRAME_MAGIC & 0xff) && rx[1] == (FRAME_MAGIC >> 8)) {
		u32 len = get_u32(rx + 8);
		if (len <= MAX_BODY_BYTES && HEADER_BYTES + len > rx_len)
			return HEADER_BYTES + len - rx_len;
	}
	return room < 4096 ? room : 4096;
}

/*
 * The port is readable (or hung up): read on while it has bytes, each whole frame taken as it
 * completes — one trip through the loop per read would cost a poll per page. Bounded, so a host
 * that never pauses still leaves the loop to the sessions.
 */
static void channel_read(short revents)
{
	int gone = 0;
	if (revents & POLLIN) {
		for (int reads = 0; reads < 64; reads++) {
			size_t want = rx_want();
			long n;
			if (tx_room() < ANSWER_ROOM || !want) {
				/* No room to answer what comes (or a whole frame waits for it): later — unless the host hung up. */
				gone = !reads && (revents & (POLLHUP | POLLERR));
				break;
			}
			n = k_read(control_fd, rx + rx_len, want);
			if (n == -EINTR)
				continue;
			if (n == -EAGAIN)
				break;
			if (n <= 0) {
				/* 0: the host side is closed (a virtio port without a host, a socket whose peer went). */
				gone = 1;
				break;
			}
			rx_len += (size_t)n;
			channel_parse();
		}
	} else {
		gone = (revents & (POLLHUP | POLLERR)) != 0;
	}
	if (!gone)
		return;
	/* No host: a half-received frame is the old host's, never the start of the next one's. */
	if (rx_len) {
		say(DEBUG, "control: the host went in the middle of a frame (%l bytes dropped)", (long)rx_len);
		snapshot_host_hung_up(rx_len);
	}
	rx_len = 0;
	rx_resyncing = 0;
	host_said_hello = 0;
	host_gone = 1;
}

/* The port's entry for poll(), or 0 when it is not to be watched now. */
static int channel_poll_events(void)
{
	if (control_fd < 0 || host_gone)
		return 0;
	short events = tx_room() >= ANSWER_ROOM ? POLLIN : 0;
	if (tx_head < tx_tail || splice_head_left || splice_left)
		events |= POLLOUT;
	return events;
}
