/*
 * A container started from a template (template=1, src/oci/template.ts): the VM was saved at the
 * snapshot point before any container's root existed — QEMU 7.2 refuses to migrate a 9p share the
 * guest has mounted, so no share is mounted at the save. After each restore's RESUME (fresh
 * entropy and clock first) the supervisor attaches this container: it mounts the bundle share,
 * reads the host's container.plan (src/oci/template-plan.ts: every option already parsed into
 * mount flags and data, strings in hex), mounts the root share, makes each mount with its mount
 * point opened inside the new root by openat2(RESOLVE_IN_ROOT) — as burrow's own
 * src/modes/microvm/container-mounts.ts does for a cold boot — moves the VM's API mounts in and
 * pivots. In C, because the time from the restore to the container's process is the point of a
 * template: burrow's runtime is gone before the save and is never run again.
 */

#if defined(__x86_64__)
enum { NR_mkdirat_ = 258, NR_openat2_ = 437, NR_pivot_root_ = 155, NR_chroot_ = 161, NR_fchown_ = 93 };
#define O_DIRECTORY_ 0200000
#elif defined(__aarch64__)
enum { NR_mkdirat_ = 34, NR_openat2_ = 437, NR_pivot_root_ = 41, NR_chroot_ = 51, NR_fchown_ = 55 };
#define O_DIRECTORY_ 040000
#endif
#define O_PATH_ 010000000
#define MS_BIND_ 4096
#define MS_MOVE_ 8192
#define MS_NOSUID_ 2
#define MS_NODEV_ 4
#define MS_NOEXEC_ 8
#define AT_REMOVEDIR_ 0x200
#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_NO_SYMLINKS_ 0x04
#define RESOLVE_IN_ROOT_ 0x10
#define ENOENT_ 2
#define EEXIST_ 17

/* Where the root share is mounted before the pivot (src/boot/paths.ts ROOT_MOUNT_POINT; every image has it). */
#define NEW_ROOT "/sysroot"
#define BUNDLE_DIR "/dev/.burrow-bundle"
#define FILES_DIR "/dev/.burrow-files"
#define PLAN_NAME "container.plan"
/* The plan's whole text: destinations are at most PATH_MAX, twice that in hex, a few dozen mounts. */
#define PLAN_MAX_BYTES (256 * 1024)
#define PLAN_MAX_MOUNTS 128
/* What switch_root moves into the new root (src/modes/microvm/mounts.ts MOVED_MOUNTS). */
static const char *const moved_mounts[] = { "/dev", "/proc", "/sys", "/run", "/tmp", 0 };

struct open_how_k { u64 flags, mode, resolve; };

static int k_openat2(int dir, const char *path, u64 flags, u64 resolve, u64 mode)
{
	struct open_how_k how = { flags, mode, resolve };
	return (int)sys4(NR_openat2_, dir, path, &how, sizeof(how));
}

static int k_mkdir_at(const char *path)
{
	return (int)sys3(NR_mkdirat_, AT_FDCWD, path, 0700);
}

static int k_mount(const char *source, const char *target, const char *type, unsigned long flags, const char *data)
{
	return (int)sys5(NR_mount, source, target, type, flags, data);
}

/* A tree mount points are opened in: the new root (never left), or the VM's own (no symlink followed). */
struct tree { int fd; u64 resolve; };

/* The directory `path` (relative, "a/b") under the tree, made 0755 where missing; an O_PATH fd or -errno. */
static int open_dir(const struct tree *t, char *path)
{
	u64 flags = O_PATH_ | O_DIRECTORY_ | O_CLOEXEC;
	int fd = k_openat2(t->fd, *path ? path : ".", flags, t->resolve, 0);
	if (fd != -ENOENT_ || !*path)
		return fd;
	/* Component by component: each one made in its parent as resolved inside the tree, mkdirat never following it. */
	for (char *end = path;; end++) {
		if (*end != '/' && *end)
			continue;
		char saved = *end;
		*end = 0;
		fd = k_openat2(t->fd, path, flags, t->resolve, 0);
		if (fd == -ENOENT_) {
			char *slash = end;
			while (slash > path && *slash != '/')
				slash--;
			int parent;
			if (slash == path) {
				parent = k_openat2(t->fd, ".", flags, t->resolve, 0);
			} else {
				*slash = 0;
				parent = k_openat2(t->fd, path, flags, t->resolve, 0);
				*slash = '/';
			}
			if (parent < 0) {
				*end = saved;
				return parent;
			}
			int made = (int)sys3(NR_mkdirat_, parent, slash == path ? path : slash + 1, 0755);
			k_close(parent);
			/* EEXIST: made meanwhile, or a dangling symlink, which the open below refuses or resolves inside the tree. */
			if (made < 0 && made != -EEXIST_) {
				*end = saved;
				return made;
			}
			fd = k_openat2(t->fd, path, flags, t->resolve, 0);
		}
		*end = saved;
		if (fd < 0 || !saved)
			return fd;
		k_close(fd);
	}
}

/* The regular file `path` under the tree, made empty (0644) where missing; an fd or -errno. */
static int open_file(const struct tree *t, char *path)
{
	int fd = k_openat2(t->fd, path, O_PATH_ | O_CLOEXEC, t->resolve, 0);
	if (fd == -ENOENT_) {
		char *slash = path + str_len(path);
		while (slash > path && *slash != '/')
			slash--;
		if (slash > path) {
			*slash = 0;
			int dir = open_dir(t, path);
			*slash = '/';
			if (dir < 0)
				return dir;
			k_close(dir);
		}
		fd = k_openat2(t->fd, path, O_RDONLY | O_CREAT | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, t->resolve, 0644);
	}
	if (fd < 0)
		return fd;
	struct statx_k st;
	if (k_statx(fd, &st) < 0 || (st.mode & S_IFMT) != S_IFREG) {
		k_close(fd);
		return -EINVAL;
	}
	return fd;
}

static int open_target(const struct tree *t, const char *destination, int file)
{
	static char path[4096 + 1];
	while (*destination == '/')
		destination++;
	size_t n = 0;
	for (; destination[n] && n < sizeof(path) - 1; n++)
		path[n] = destination[n];
	path[n] = 0;
	while (n > 0 && path[n - 1] == '/')
		path[--n] = 0;
	return file ? open_file(t, path) : open_dir(t, path);
}

static const char *fd_path(int fd)
{
	static struct line l;
	l.len = 0;
	put_str(&l, "/proc/self/fd/");
	put_num(&l, fd);
	l.text[l.len] = 0;
	return l.text;
}

/* A field of the plan: "-" is the empty string, anything else lowercase hex. */
static const char *plan_text(char *field)
{
	if (str_eq(field, "-"))
		return "";
	return unhex_in_place(field) ? 0 : field;
}

static int plan_number(const char *field, u64 *out)
{
	return parse_u64(field, 10, out);
}

struct plan_mount {
	/* 'f' a filesystem (shares are 9p ones), 'b' a file copied from the bundle, 'o' the VM's own mount remounted. */
	char kind;
	int in_root;
	u64 flags, propagation;
	const char *source, *type, *data, *destination;
};

static char plan_buffer[PLAN_MAX_BYTES + 1];
static struct plan_mount plan_mounts[PLAN_MAX_MOUNTS];

struct container_plan {
	const char *root_tag, *root_data;
	u64 root_flags, readonly_flags, files_bytes;
	int nmounts;
	/* On the engine's network: the NIC's lines (nic.c); nic.name 0 without. */
	struct nic_plan nic;
};

/* Why the plan cannot be read, or 0. */
static const char *read_container_plan(int bundle_fd, struct container_plan *plan)
{
	int fd = k_openat2(bundle_fd, PLAN_NAME, O_RDONLY | O_CLOEXEC, RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_, 0);
	if (fd < 0)
		return "cannot open " PLAN_NAME " on the bundle share";
	size_t len = 0;
	for (;;) {
		long n = k_read(fd, plan_buffer + len, PLAN_MAX_BYTES - len);
		if (n == -EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == PLAN_MAX_BYTES)
			break;
	}
	k_close(fd);
	if (len == PLAN_MAX_BYTES)
		return PLAN_NAME ": longer than its bound";
	plan_buffer[len] = 0;
	plan->nmounts = 0;
	plan->nic.name = 0;
	plan->nic.nrequests = 0;
	int header = 0, root = 0;
	for (char *line = plan_buffer; *line;) {
		char *next = line;
		while (*next && *next != '\n')
			next++;
		if (*next)
			*next++ = 0;
		char *f[10];
		int n = split_fields(line, f, 10);
		line = next;
		if (n == 0)
			continue;
		if (!header) {
			if (n != 2 || !str_eq(f[0], "burrow-container") || !str_eq(f[1], "1"))
				return PLAN_NAME ": not a version 1 container plan";
			header = 1;
		} else if (str_eq(f[0], "root")) {
			if (n != 6 || !(plan->root_tag = plan_text(f[1])) || plan_number(f[2], &plan->root_flags) || !(plan->root_data = plan_text(f[3])) ||
			    plan_number(f[4], &plan->readonly_flags) || plan_number(f[5], &plan->files_bytes))
				return PLAN_NAME ": a malformed root line";
			root = 1;
		} else if (str_eq(f[0], "mount")) {
			struct plan_mount *m = &plan_mounts[plan->nmounts];
			if (plan->nmounts >= PLAN_MAX_MOUNTS)
				return PLAN_NAME ": too many mounts";
			if (n != 9 || str_len(f[1]) != 1 || (f[1][0] != 'f' && f[1][0] != 'b' && f[1][0] != 'o') || (!str_eq(f[2], "root") && !str_eq(f[2], "vm")) ||
			    plan_number(f[3], &m->flags) || plan_number(f[4], &m->propagation) || !(m->source = plan_text(f[5])) || !(m->type = plan_text(f[6])) ||
			    !(m->data = plan_text(f[7])) || !(m->destination = plan_text(f[8])) || m->destination[0] != '/')
				return PLAN_NAME ": a malformed mount line";
			m->kind = f[1][0];
			m->in_root = str_eq(f[2], "root");
			plan->nmounts++;
		} else if (str_eq(f[0], "nic")) {
			u32 mac_len = 0;
			if (n != 3 || plan->nic.name || !(plan->nic.name = plan_text(f[1])) || str_len(plan->nic.name) >= NIC_NAME_MAX ||
			    unhex_bytes_in_place(f[2], &mac_len) || mac_len != 6)
				return PLAN_NAME ": a malformed nic line";
			plan->nic.template_mac = (const unsigned char *)f[2];
		} else if (str_eq(f[0], "netlink")) {
			struct nic_request *r = &plan->nic.requests[plan->nic.nrequests];
			u64 offset;
			if (!plan->nic.name)
				return PLAN_NAME ": a netlink line before the nic line";
			if (plan->nic.nrequests >= NIC_MAX_REQUESTS)
				return PLAN_NAME ": too many netlink requests";
			if (n != 3 || plan_number(f[1], &offset) || offset > PLAN_MAX_BYTES || unhex_bytes_in_place(f[2], &r->len))
				return PLAN_NAME ": a malformed netlink line";
			r->bytes = (const unsigned char *)f[2];
			r->index_offset = (u32)offset;
			if (!nic_request_ok(r))
				return PLAN_NAME ": a netlink request whose length or index offset does not fit it";
			plan->nic.nrequests++;
		} else {
			return PLAN_NAME ": an unknown line";
		}
	}
	return root ? 0 : PLAN_NAME ": no root line";
}

/* The plan's file copies on a tmpfs of their own (a bind of the read-only share would make /etc/hosts unwritable). */
static int stage_file(int bundle_fd, const char *file, int index, struct line *staged)
{
	int from = k_openat2(bundle_fd, file, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_, 0);
	if (from < 0)
		return from;
	struct statx_k st;
	int ret = k_statx(from, &st);
	if (ret == 0 && (st.mode & S_IFMT) != S_IFREG)
		ret = -EINVAL;
	staged->len = 0;
	put_str(staged, FILES_DIR "/");
	put_num(staged, index);
	staged->text[staged->len] = 0;
	int to = ret < 0 ? ret : k_openat(AT_FDCWD, staged->text, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.mode & 07777);
	ret = to < 0 ? to : 0;
	static char chunk[16384];
	while (ret == 0) {
		long n = k_read(from, chunk, sizeof(chunk));
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			ret = (int)n;
			break;
		}
		if (write_all(to, chunk, (size_t)n) < 0)
			ret = -EIO;
	}
	if (ret == 0)
		ret = k_fchmod(to, st.mode & 07777);
	if (ret == 0)
		ret = (int)sys3(NR_fchown_, to, st.uid, st.gid);
	if (to >= 0)
		k_close(to);
	k_close(from);
	return ret;
}

static __attribute__((noreturn)) void attach_failed(const char *what, const char *where, int err)
{
	say(ERR, "container template: %s %s: %e; the container's root is not attached", what, where, err);
	point_fail();
}

/* One plan mount; its mount point made and opened first. Returns 0, or 1 when skipped (the kernel lacks the type). */
static int apply_plan_mount(const struct plan_mount *m, int index, const struct tree *root, const struct tree *vm, const char *staged)
{
	if (m->kind == 'o') {
		int ret = k_mount("none", m->destination, 0, MS_REMOUNT | MS_BIND_ | m->flags, 0);
		if (ret < 0)
			attach_failed("remounting the VM's own", m->destination, ret);
		return 0;
	}
	const struct tree *t = m->in_root ? root : vm;
	int file = m->kind == 'b';
	int target = open_target(t, m->destination, file);
	if (target < 0)
		attach_failed("making the mount point", m->destination, target);
	int ret = file ? k_mount(staged, fd_path(target), 0, MS_BIND_, 0) : k_mount(m->source, fd_path(target), m->type, m->flags, *m->data ? m->data : 0);
	k_close(target);
	if (ret == -ENODEV && !file) {
		say(WARN, "container mount %s (%s): the kernel has no %s filesystem; skipped", m->destination, m->type, m->type);
		return 1;
	}
	if (ret < 0)
		attach_failed(file ? "bind-mounting the file copy on" : "mounting", m->destination, ret);
	(void)index;
	if (!(file && m->flags) && !m->propagation)
		return 0;
	/* The fd above is the mount point below the new mount: reopened to reach the new mount's root. */
	int top = open_target(t, m->destination, file);
	if (top < 0)
		attach_failed("reopening", m->destination, top);
	/* A bind takes its flags from its source: a second call sets the plan's (ro, nosuid, …). */
	if (file && m->flags && (ret = k_mount("none", fd_path(top), 0, MS_REMOUNT | MS_BIND_ | m->flags, 0)) < 0)
		attach_failed("remounting with the plan's flags", m->destination, ret);
	if (m->propagation && (ret = k_mount("none", fd_path(top), 0, m->propagation, 0)) < 0)
		attach_failed("setting the propagation of", m->destination, ret);
	k_close(top);
	return 0;
}

/* The root switch of src/modes/microvm/switchroot.ts for a boot disk's root: the API mounts move in, pivot, the old root detached. */
static void switch_to_new_root(void)
{
	static char target[64];
	for (int i = 0; moved_mounts[i]; i++) {
		if (join_path(target, sizeof(target), NEW_ROOT, moved_mounts[i] + 1))
			attach_failed("moving", moved_mounts[i], -EINVAL);
		int ret = k_mount(moved_mounts[i], target, 0, MS_MOVE_, 0);
		if (ret < 0)
			attach_failed("moving the VM's mount", moved_mounts[i], ret);
	}
	int ret = k_chdir(NEW_ROOT);
	if (ret < 0)
		attach_failed("entering", NEW_ROOT, ret);
	/* pivot_root(".", ".") stacks the old root on top of the new one; detaching the top leaves the new root "/". */
	ret = (int)sys2(NR_pivot_root_, ".", ".");
	if (ret == 0) {
		ret = k_umount2(".", MNT_DETACH);
		if (ret < 0)
			attach_failed("detaching the old root", "/", ret);
	} else {
		/* EINVAL when a mount involved has shared propagation: the move still works. */
		ret = k_mount(".", "/", 0, MS_MOVE_, 0);
		if (ret == 0)
			ret = (int)sys1(NR_chroot_, ".");
		if (ret < 0)
			attach_failed("switching the root to", NEW_ROOT, ret);
	}
	k_chdir("/");
}

/* After the resume: the container's root and mounts from the shares, then the pivot. Fails closed (burrow.onfail). */
static void container_attach(const char *bundle_tag)
{
	long started = boottime_ms();
	struct container_plan plan;
	int ret = k_mkdir_at(BUNDLE_DIR);
	if (ret < 0)
		attach_failed("making", BUNDLE_DIR, ret);
	ret = k_mount(bundle_tag, BUNDLE_DIR, "9p", MS_RDONLY | MS_NOSUID_ | MS_NODEV_ | MS_NOEXEC_, "trans=virtio,version=9p2000.L,msize=512000,cache=none");
	if (ret < 0)
		attach_failed("mounting the bundle share", bundle_tag, ret);
	int bundle_fd = k_openat2(AT_FDCWD, BUNDLE_DIR, O_PATH_ | O_DIRECTORY_ | O_CLOEXEC, 0, 0);
	if (bundle_fd < 0)
		attach_failed("opening", BUNDLE_DIR, bundle_fd);
	const char *problem = read_container_plan(bundle_fd, &plan);
	if (problem) {
		say(ERR, "container template: %s", problem);
		point_fail();
	}
	if (plan.nic.name) {
		const char *what = "";
		if ((ret = nic_configure(&plan.nic, &what)) < 0)
			attach_failed(what, plan.nic.name, ret);
	}
	ret = k_mount(plan.root_tag, NEW_ROOT, "9p", plan.root_flags, plan.root_data);
	if (ret < 0)
		attach_failed("mounting the root share", plan.root_tag, ret);
	/* Copies of the plan's files, each named by its mount's index. */
	static struct line staged[PLAN_MAX_MOUNTS];
	if (plan.files_bytes > 0) {
		static struct line size;
		size.len = 0;
		put_str(&size, "mode=0755,size=");
		put_num(&size, (long)plan.files_bytes);
		size.text[size.len] = 0;
		if ((ret = k_mkdir_at(FILES_DIR)) < 0 || (ret = k_mount("burrow-files", FILES_DIR, "tmpfs", 0, size.text)) < 0)
			attach_failed("making the files' tmpfs", FILES_DIR, ret);
	}
	for (int i = 0; i < plan.nmounts; i++)
		if (plan_mounts[i].kind == 'b' && (ret = stage_file(bundle_fd, plan_mounts[i].source, i, &staged[i])) < 0)
			attach_failed("copying from the bundle", plan_mounts[i].source, ret);
	struct tree root = { k_openat2(AT_FDCWD, NEW_ROOT, O_PATH_ | O_DIRECTORY_ | O_CLOEXEC, 0, 0), RESOLVE_IN_ROOT_ | RESOLVE_NO_MAGICLINKS_ };
	struct tree vm = { k_openat2(AT_FDCWD, "/", O_PATH_ | O_DIRECTORY_ | O_CLOEXEC, 0, 0), RESOLVE_NO_SYMLINKS_ | RESOLVE_NO_MAGICLINKS_ };
	if (root.fd < 0 || vm.fd < 0)
		attach_failed("opening", NEW_ROOT, root.fd < 0 ? root.fd : vm.fd);
	int made = 0, skipped = 0;
	for (int i = 0; i < plan.nmounts; i++) {
		if (apply_plan_mount(&plan_mounts[i], i, &root, &vm, staged[i].text))
			skipped++;
		else
			made++;
	}
	/* switch_root moves the VM's mounts onto these: made now, while the root may still be written. */
	for (int i = 0; moved_mounts[i]; i++) {
		int fd = open_target(&root, moved_mounts[i], 0);
		if (fd < 0)
			attach_failed("making the mount point", moved_mounts[i], fd);
		k_close(fd);
	}
	if (plan.readonly_flags && (ret = k_mount("none", NEW_ROOT, 0, plan.readonly_flags, 0)) < 0)
		attach_failed("remounting read-only", NEW_ROOT, ret);
	k_close(root.fd);
	k_close(vm.fd);
	k_close(bundle_fd);
	/* The staging goes; the file binds keep their tmpfs alive. */
	k_umount2(BUNDLE_DIR, MNT_DETACH);
	k_unlinkat(AT_FDCWD, BUNDLE_DIR, AT_REMOVEDIR_);
	if (plan.files_bytes > 0) {
		k_umount2(FILES_DIR, MNT_DETACH);
		k_unlinkat(AT_FDCWD, FILES_DIR, AT_REMOVEDIR_);
	}
	switch_to_new_root();
	say(INFO, "container template: root %s attached, %d mounts made, %d skipped, %s%s%sroot switched in %l ms", plan.root_tag, made, skipped,
	    plan.nic.name ? "NIC " : "", plan.nic.name ? plan.nic.name : "", plan.nic.name ? " configured, " : "", boottime_ms() - started);
}
