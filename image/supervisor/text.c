/*
 * Small string helpers (lengths, comparisons, numbers, hex, fields, paths). Apart because every
 * other duty uses them and there is no libc to lean on.
 */

/* A number from wire.h spelled inside a message, so the text never repeats the value by hand. */
#define STR_(x) #x
#define STR(x) STR_(x)

static size_t str_len(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static int starts_with(const char *s, const char *prefix)
{
	while (*prefix)
		if (*s++ != *prefix++)
			return 0;
	return 1;
}

/* Decimal (or, with base 16, hex) digits only, no overflow; 0 on success. */
static int parse_u64(const char *s, int base, u64 *out)
{
	u64 value = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		int digit = *s >= '0' && *s <= '9' ? *s - '0' : base == 16 && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10 : base == 16 && *s >= 'A' && *s <= 'F' ? *s - 'A' + 10 : -1;
		if (digit < 0 || value > (~0ULL - (u64)digit) / (u64)base)
			return -1;
		value = value * (u64)base + (u64)digit;
	}
	*out = value;
	return 0;
}

static const char *errno_name(int err)
{
	static const char *const names[] = {
		[1] = "EPERM", [2] = "ENOENT", [3] = "ESRCH", [4] = "EINTR", [5] = "EIO", [6] = "ENXIO",
		[7] = "E2BIG", [8] = "ENOEXEC", [9] = "EBADF", [10] = "ECHILD", [11] = "EAGAIN",
		[12] = "ENOMEM", [13] = "EACCES", [14] = "EFAULT", [16] = "EBUSY", [17] = "EEXIST",
		[19] = "ENODEV", [20] = "ENOTDIR", [21] = "EISDIR", [22] = "EINVAL", [24] = "EMFILE",
		[26] = "ETXTBSY", [28] = "ENOSPC", [30] = "EROFS", [36] = "ENAMETOOLONG", [38] = "ENOSYS",
		[25] = "ENOTTY", [40] = "ELOOP", [95] = "EOPNOTSUPP", [99] = "EADDRNOTAVAIL", [101] = "ENETUNREACH", [110] = "ETIMEDOUT",
	};
	if (err > 0 && err < (int)(sizeof(names) / sizeof(names[0])) && names[err])
		return names[err];
	return 0;
}

/* mountinfo and /proc/swaps spell space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = 0;
}

/* Split one line in place into fields separated by spaces or tabs (/proc/swaps pads with both). */
static int split_fields(char *line, char **fields, int max)
{
	int n = 0;
	while (*line && n < max) {
		while (*line == ' ' || *line == '\t')
			*line++ = 0;
		if (!*line)
			break;
		fields[n++] = line;
		while (*line && *line != ' ' && *line != '\t')
			line++;
		if (*line)
			*line++ = 0;
	}
	return n;
}

static int join_path(char *out, size_t size, const char *dir, const char *name)
{
	size_t n = 0;
	for (const char *s = dir; *s; s++)
		if (n < size - 1)
			out[n++] = *s;
	if (n < size - 1)
		out[n++] = '/';
	for (const char *s = name; *s; s++)
		if (n < size - 1)
			out[n++] = *s;
	out[n] = 0;
	return n < size - 1 ? 0 : -1;
}

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Lowercase hex decoded in place (the text shrinks by half), NUL bytes allowed; its length in *len. 0 on success, -1 when malformed. */
static int unhex_bytes_in_place(char *text, u32 *len)
{
	unsigned char *out = (unsigned char *)text;
	for (const char *in = text; *in; in += 2) {
		int high = hex_value(in[0]), low = in[1] ? hex_value(in[1]) : -1;
		if (high < 0 || low < 0)
			return -1;
		*out++ = (unsigned char)(high << 4 | low);
	}
	*len = (u32)(out - (unsigned char *)text);
	return 0;
}

/* The same for text: a NUL byte is refused, the result a C string. 0 on success. */
static int unhex_in_place(char *text)
{
	u32 len;
	if (unhex_bytes_in_place(text, &len))
		return -1;
	for (u32 i = 0; i < len; i++)
		if (!text[i])
			return -1;
	text[len] = 0;
	return 0;
}

static int same_name(const char *a, const char *b)
{
	while (*a && *a != '=' && *a == *b)
		a++, b++;
	return (*a == '=' || !*a) && (*b == '=' || !*b);
}
