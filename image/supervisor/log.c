/*
 * Logging: one record per line to /dev/kmsg, and to the console when the kernel will not echo it,
 * plus the exit-status line for the host. Apart because every duty reports through say().
 */

static int kmsg_fd = -1;
static int console_fd = -1;

struct line {
	char text[600];
	size_t len;
};

static void put_str(struct line *l, const char *s)
{
	while (s && *s && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = *s++;
}

static void put_num(struct line *l, long n)
{
	char digits[24];
	int i = 0;
	unsigned long u = n < 0 ? -(unsigned long)n : (unsigned long)n;
	if (n < 0)
		put_str(l, "-");
	do
		digits[i++] = (char)('0' + u % 10);
	while ((u /= 10) && i < 23);
	while (i && l->len < sizeof(l->text) - 2)
		l->text[l->len++] = digits[--i];
}

/* %s string, %d int, %l long, %e errno (a negative syscall result or an errno). */
static void format(struct line *l, const char *fmt, va_list args)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%' || !fmt[1]) {
			char c[2] = { *fmt, 0 };
			put_str(l, c);
			continue;
		}
		switch (*++fmt) {
		case 's': put_str(l, va_arg(args, const char *)); break;
		case 'd': put_num(l, va_arg(args, int)); break;
		case 'l': put_num(l, va_arg(args, long)); break;
		case 'e': {
			int err = va_arg(args, int);
			const char *name = errno_name(err < 0 ? -err : err);
			if (name) {
				put_str(l, name);
			} else {
				put_str(l, "errno ");
				put_num(l, err < 0 ? -err : err);
			}
			break;
		}
		default: put_str(l, "%"); break;
		}
	}
}

static void say(enum severity severity, const char *fmt, ...)
{
	static const char *const labels[] = { [ERR] = "error: ", [WARN] = "warning: ", [INFO] = "", [DEBUG] = "debug: " };
	struct line body = { .len = 0 };
	va_list args;
	if ((int)severity > opt.log_level)
		return;
	va_start(args, fmt);
	format(&body, fmt, args);
	va_end(args);
	body.text[body.len] = 0;
	if (kmsg_fd >= 0) {
		struct line record = { .len = 0 };
		put_str(&record, "<");
		put_num(&record, opt.facility * 8 + severity);
		put_str(&record, ">burrow: ");
		put_str(&record, body.text);
		record.text[record.len++] = '\n';
		k_write(kmsg_fd, record.text, record.len);
	}
	/* The kernel prints kmsg records more urgent than console_loglevel itself. */
	if (opt.console_level > 0 && ((int)severity >= opt.console_level || kmsg_fd < 0)) {
		struct line out = { .len = 0 };
		put_str(&out, "burrow: ");
		put_str(&out, labels[severity]);
		put_str(&out, body.text);
		out.text[out.len++] = '\n';
		k_write(2, out.text, out.len);
	}
}

/* The line `burrow run` trusts (src/exit-marker.ts), on /dev/console: stderr may be a device the host does not read. */
static void announce_exit_status(int status)
{
	struct line l = { .len = 0 };
	put_str(&l, "burrow: guest exit status ");
	put_num(&l, status);
	if (opt.runid) {
		put_str(&l, " run ");
		put_str(&l, opt.runid);
	}
	l.text[l.len++] = '\n';
	k_write(console_fd >= 0 ? console_fd : 2, l.text, l.len);
}

/* Where say() and the exit-status line go; once. */
static void open_log(void)
{
	if (kmsg_fd < 0)
		kmsg_fd = k_open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (console_fd < 0)
		console_fd = k_open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
}
