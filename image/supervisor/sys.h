/*
 * Every system call the supervisor makes, in one file: raw syscalls for x86_64 and aarch64, no
 * libc. The supervisor stays PID 1 for the workload's whole life; without libc it is a few pages
 * (glibc's static start-up alone would be ~700 KiB pinned in an initramfs).
 */
#ifndef BURROW_SUPERVISOR_SYS_H
#define BURROW_SUPERVISOR_SYS_H

typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef int pid_t;

#if defined(__x86_64__)
enum {
	NR_read = 0, NR_write = 1, NR_close = 3, NR_lseek = 8, NR_rt_sigaction = 13, NR_rt_sigprocmask = 14,
	NR_ioctl = 16, NR_pipe2 = 293, NR_dup3 = 292, NR_getpid = 39, NR_clone = 56, NR_execve = 59,
	NR_wait4 = 61, NR_kill = 62, NR_chdir = 80, NR_setsid = 112, NR_setgroups = 116,
	NR_setresuid = 117, NR_setresgid = 119, NR_prctl = 157, NR_sync = 162, NR_mount = 165,
	NR_umount2 = 166, NR_swapoff = 168, NR_reboot = 169, NR_sethostname = 170,
	NR_clock_gettime = 228, NR_exit_group = 231, NR_openat = 257, NR_ppoll = 271,
	NR_signalfd4 = 289, NR_prlimit64 = 302, NR_syncfs = 306, NR_socketpair = 53, NR_clock_settime = 227,
	NR_fcntl = 72, NR_socket = 41, NR_connect = 42, NR_fsync = 74, NR_fchmod = 91, NR_unlinkat = 263,
	NR_renameat2 = 316, NR_statx = 332, NR_sched_setscheduler = 144,
};

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

__asm__(".text\n.global _start\n_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call start_c\n"
	"	hlt\n");
#elif defined(__aarch64__)
enum {
	NR_read = 63, NR_write = 64, NR_close = 57, NR_lseek = 62, NR_rt_sigaction = 134, NR_rt_sigprocmask = 135,
	NR_ioctl = 29, NR_pipe2 = 59, NR_dup3 = 24, NR_getpid = 172, NR_clone = 220, NR_execve = 221,
	NR_wait4 = 260, NR_kill = 129, NR_chdir = 49, NR_setsid = 157, NR_setgroups = 159,
	NR_setresuid = 147, NR_setresgid = 149, NR_prctl = 167, NR_sync = 81, NR_mount = 40,
	NR_umount2 = 39, NR_swapoff = 225, NR_reboot = 142, NR_sethostname = 161,
	NR_clock_gettime = 113, NR_exit_group = 94, NR_openat = 56, NR_ppoll = 73,
	NR_signalfd4 = 74, NR_prlimit64 = 261, NR_syncfs = 267, NR_socketpair = 199, NR_clock_settime = 112,
	NR_fcntl = 25, NR_socket = 198, NR_connect = 203, NR_fsync = 82, NR_fchmod = 52, NR_unlinkat = 35,
	NR_renameat2 = 276, NR_statx = 291, NR_sched_setscheduler = 119,
};

static inline long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	register long x5 __asm__("x5") = f;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
	return x0;
}

__asm__(".text\n.global _start\n_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	mov x0, sp\n"
	"	and x1, x0, #-16\n"
	"	mov sp, x1\n"
	"	bl start_c\n"
	"	brk #0\n");
#else
#error "the supervisor knows x86_64 and aarch64 only"
#endif

#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* The kernel's numbers; the same on both architectures (asm-generic and x86 agree here). */
#define AT_FDCWD (-100)
#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_CREAT 0100
#define O_NOCTTY 0400
#define O_TRUNC 01000
#define O_NONBLOCK 04000
#define O_CLOEXEC 02000000
#define SIGHUP 1
#define SIGINT 2
#define SIGKILL 9
#define SIGUSR1 10
#define SIGUSR2 12
#define SIGTERM 15
#define SIGCHLD 17
#define SIGCONT 18
/* glibc's SIGRTMIN is the kernel's 32 + 2 (glibc keeps two for itself): what busybox's `kill -RTMIN+4` and systemd send. */
#define SIGRTMIN_LIBC 34
#define SIG_BLOCK 0
#define SIG_SETMASK 2
#define WNOHANG 1
#define ECHILD 10
#define EINTR 4
#define EIO 5
#define ENODEV 19
#define EAGAIN 11
#define EPIPE 32
#define ENOTCONN 107
#define SEEK_END 2
#define EINVAL 22
#define POLLIN 0x1
#define POLLERR 0x8
#define POLLHUP 0x10
#define POLLNVAL 0x20
#define MS_RDONLY 1
#define MS_REMOUNT 32
#define MNT_DETACH 2
#define CLOCK_MONOTONIC 1
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAPBSET_DROP 24
#define SFD_CLOEXEC O_CLOEXEC
#define LINUX_REBOOT_MAGIC1 0xfee1dead
#define LINUX_REBOOT_MAGIC2 672274793
#define LINUX_REBOOT_CMD_RESTART 0x01234567
#define LINUX_REBOOT_CMD_HALT 0xCDEF0123
#define LINUX_REBOOT_CMD_POWER_OFF 0x4321FEDC
#define LINUX_REBOOT_CMD_CAD_OFF 0
/* _IOWR('X', 119, int): the same on x86_64 and arm64. */
#define FIFREEZE 0xC0045877
/* _IOW('R', 0x03, int[2]) and _IO('R', 0x07) from linux/random.h: the same on x86_64 and arm64. */
#define RNDADDENTROPY 0x40085203
#define RNDRESEEDCRNG 0x5207
#define CLOCK_REALTIME 0
#define AF_UNIX 1
#define SOCK_STREAM 1
/* The same on x86_64 and aarch64 (asm-generic values). */
#define O_EXCL 0200
#define O_NOFOLLOW 0400000
#define O_ASYNC 020000
#define F_SETFL 4
#define F_SETOWN 8
#define F_SETPIPE_SZ 1031
#define SCHED_OTHER 0
#define SCHED_BATCH 3
#define POLLOUT 0x4
#define SIGPIPE 13
#define SIGIO 29
#define TIOCSCTTY 0x540E
#define TIOCSWINSZ 0x5414
#define TIOCGPTN 0x80045430
#define TIOCSPTLCK 0x40045431
#define AT_EMPTY_PATH 0x1000
#define STATX_BASIC_STATS 0x7ff
#define S_IFMT 0170000
#define S_IFREG 0100000

struct timespec_k { long tv_sec; long tv_nsec; };
/* struct statx: the same layout on every architecture (what makes it the call to use here); 256 bytes, all of which the kernel writes. */
struct statx_k { u32 mask, blksize; u64 attributes; u32 nlink, uid, gid; unsigned short mode, pad1; u64 ino, size, blocks, attributes_mask; unsigned char rest[192]; };
_Static_assert(sizeof(struct statx_k) == 256, "statx(2) writes 256 bytes");
struct pollfd_k { int fd; short events; short revents; };
struct rlimit_k { u64 cur; u64 max; };
struct sigaction_k { void *handler; unsigned long flags; void *restorer; u64 mask; };
/* struct signalfd_siginfo is 128 bytes; the signal number comes first. */
struct signalfd_info { u32 signo; int err; int code; u32 pid; u32 uid; int fd; u32 tid; u32 band; u32 overrun; u32 trapno; int status; int _int; u64 ptr; u64 utime; u64 stime; u64 addr; unsigned short addr_lsb; unsigned char pad[46]; };

static inline ssize_t k_read(int fd, void *buf, size_t len) { return sys3(NR_read, fd, buf, len); }
static inline ssize_t k_write(int fd, const void *buf, size_t len) { return sys3(NR_write, fd, buf, len); }
static inline int k_open(const char *path, int flags) { return (int)sys4(NR_openat, AT_FDCWD, path, flags, 0644); }
static inline int k_close(int fd) { return (int)sys1(NR_close, fd); }
static inline long k_lseek(int fd, long offset, int whence) { return sys3(NR_lseek, fd, offset, whence); }
static inline int k_pipe2(int fds[2], int flags) { return (int)sys2(NR_pipe2, fds, flags); }
static inline int k_getpid(void) { return (int)sys0(NR_getpid); }
static inline int k_sched_setscheduler(int pid, int policy, const int *param) { return (int)sys3(NR_sched_setscheduler, pid, policy, param); }
/* clone(SIGCHLD) is fork(); the argument order of clone differs by architecture, but not for zeros. */
static inline pid_t k_fork(void) { return (pid_t)sys5(NR_clone, SIGCHLD, 0, 0, 0, 0); }
static inline int k_execve(const char *path, char *const argv[], char *const envp[]) { return (int)sys3(NR_execve, path, argv, envp); }
static inline pid_t k_wait4(pid_t pid, int *status, int options) { return (pid_t)sys4(NR_wait4, pid, status, options, 0); }
static inline int k_kill(pid_t pid, int sig) { return (int)sys2(NR_kill, pid, sig); }
static inline int k_chdir(const char *path) { return (int)sys1(NR_chdir, path); }
static inline int k_setsid(void) { return (int)sys0(NR_setsid); }
static inline int k_setgroups(size_t n, const u32 *groups) { return (int)sys2(NR_setgroups, n, groups); }
static inline int k_setresuid(u32 id) { return (int)sys3(NR_setresuid, id, id, id); }
static inline int k_setresgid(u32 id) { return (int)sys3(NR_setresgid, id, id, id); }
static inline int k_prctl(int option, unsigned long arg) { return (int)sys5(NR_prctl, option, arg, 0, 0, 0); }
static inline void k_sync(void) { sys0(NR_sync); }
static inline int k_syncfs(int fd) { return (int)sys1(NR_syncfs, fd); }
static inline int k_ioctl(int fd, unsigned long request, long arg) { return (int)sys3(NR_ioctl, fd, request, arg); }
static inline int k_remount(const char *target, unsigned long flags) { return (int)sys5(NR_mount, 0, target, 0, MS_REMOUNT | flags, 0); }
static inline int k_umount2(const char *target, int flags) { return (int)sys2(NR_umount2, target, flags); }
static inline int k_swapoff(const char *path) { return (int)sys1(NR_swapoff, path); }
static inline int k_reboot(unsigned int cmd) { return (int)sys4(NR_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, cmd, 0); }
static inline int k_sethostname(const char *name, size_t len) { return (int)sys2(NR_sethostname, name, len); }
static inline int k_prlimit(int resource, const struct rlimit_k *limit) { return (int)sys4(NR_prlimit64, 0, resource, limit, 0); }
static inline int k_sigprocmask(int how, const u64 *set, u64 *old) { return (int)sys4(NR_rt_sigprocmask, how, set, old, 8); }
static inline int k_sigaction(int sig, const struct sigaction_k *action) { return (int)sys4(NR_rt_sigaction, sig, action, 0, 8); }
static inline int k_signalfd(const u64 *mask) { return (int)sys4(NR_signalfd4, -1, mask, 8, SFD_CLOEXEC | O_NONBLOCK); }
static inline int k_ppoll(struct pollfd_k *fds, unsigned long n, const struct timespec_k *timeout) { return (int)sys5(NR_ppoll, fds, n, timeout, 0, 8); }
static inline int k_socketpair(int fds[2]) { return (int)sys4(NR_socketpair, AF_UNIX, SOCK_STREAM, 0, fds); }
static inline int k_clock_settime_realtime(const struct timespec_k *when) { return (int)sys2(NR_clock_settime, CLOCK_REALTIME, when); }
static inline int k_dup3(int from, int to) { return (int)sys3(NR_dup3, from, to, 0); }
static inline int k_openat(int dir, const char *path, int flags, int mode) { return (int)sys4(NR_openat, dir, path, flags, mode); }
static inline int k_fcntl(int fd, int cmd, long arg) { return (int)sys3(NR_fcntl, fd, cmd, arg); }
static inline int k_socket(int family, int type, int protocol) { return (int)sys3(NR_socket, family, type, protocol); }
static inline int k_connect(int fd, const void *address, size_t len) { return (int)sys3(NR_connect, fd, address, len); }
static inline int k_fsync(int fd) { return (int)sys1(NR_fsync, fd); }
static inline int k_fchmod(int fd, u32 mode) { return (int)sys2(NR_fchmod, fd, mode); }
static inline int k_unlinkat(int dir, const char *path, int flags) { return (int)sys3(NR_unlinkat, dir, path, flags); }
static inline int k_renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned flags) { return (int)sys5(NR_renameat2, from_dir, from, to_dir, to, flags); }
static inline int k_statx(int fd, struct statx_k *buf) { return (int)sys5(NR_statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, buf); }
static inline __attribute__((noreturn)) void k_exit(int status)
{
	for (;;)
		sys1(NR_exit_group, status);
}

static inline long k_now_ms(void)
{
	struct timespec_k now = {0, 0};
	sys2(NR_clock_gettime, CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* The compiler may emit calls to these for struct copies and zeroing; there is no libc to supply them. */
void *memset(void *dest, int c, size_t n)
{
	unsigned char *d = dest;
	while (n--)
		*d++ = (unsigned char)c;
	return dest;
}

void *memcpy(void *dest, const void *src, size_t n)
{
	unsigned char *d = dest;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
	return dest;
}

/* Added for the control channel's fast paths (exec by clone(CLONE_VM|CLONE_VFORK), output spliced into the port). */
#if defined(__x86_64__)
enum { NR_splice = 275, NR_mincore = 27 };
#elif defined(__aarch64__)
enum { NR_splice = 76, NR_mincore = 232 };
#endif
#define CLONE_VM 0x100
#define CLONE_VFORK 0x4000
/* _IOR('T', 0x1B): bytes a pipe holds; the same on x86_64 and arm64. */
#define FIONREAD 0x541B
#define SPLICE_F_NONBLOCK 2

/* The disposition of `sig` (the handler field: 0 SIG_DFL, 1 SIG_IGN), changing nothing. */
static inline int k_sigaction_get(int sig, struct sigaction_k *old) { return (int)sys4(NR_rt_sigaction, sig, 0, old, 8); }
static inline int k_mincore(u64 start, size_t len, unsigned char *vec) { return (int)sys3(NR_mincore, start, len, vec); }
static inline long k_splice(int from, int to, size_t len, unsigned flags) { return sys6(NR_splice, from, 0, to, 0, (long)len, flags); }

/*
 * clone(CLONE_VM | CLONE_VFORK | SIGCHLD): the child runs fn(arg) on its own stack (`stack_top`,
 * 16-byte aligned) in this process's memory, and the call returns once the child has exec'd or
 * exited — no page tables copied, no copy-on-write faults, where fork(2) costs both under TCG.
 * fn's return value is the child's exit status if it returns. The child shares every page with
 * the parent: it must write nothing but its own stack and what arg points to. The pid, or a
 * negative errno. (The child cannot simply return from a syscall wrapper: the parent's stack
 * frame is not its own, so it starts in this asm on the new stack.)
 */
static inline long k_clone_vfork(int (*fn)(void *), void *stack_top, void *arg)
{
#if defined(__x86_64__)
	long ret;
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 0;
	register long r12 __asm__("r12") = (long)fn;
	register long r13 __asm__("r13") = (long)arg;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "xor %%ebp, %%ebp\n\t"
			 "mov %%r13, %%rdi\n\t"
			 "call *%%r12\n\t"
			 "mov %%eax, %%edi\n\t"
			 "mov %[exit], %%eax\n\t"
			 "syscall\n\t"
			 "hlt\n"
			 "1:"
			 : "=a"(ret)
			 : "0"((long)NR_clone), "D"((long)(CLONE_VM | CLONE_VFORK | SIGCHLD)), "S"(stack_top), "d"(0L), "r"(r10), "r"(r8), "r"(r12), "r"(r13),
			   [exit] "i"(NR_exit_group)
			 : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = NR_clone;
	register long x0 __asm__("x0") = CLONE_VM | CLONE_VFORK | SIGCHLD;
	register long x1 __asm__("x1") = (long)stack_top;
	register long x2 __asm__("x2") = 0;
	register long x3 __asm__("x3") = 0;
	register long x4 __asm__("x4") = 0;
	register long x19 __asm__("x19") = (long)fn;
	register long x20 __asm__("x20") = (long)arg;
	__asm__ volatile("svc 0\n\t"
			 "cbnz x0, 1f\n\t"
			 "mov x29, xzr\n\t"
			 "mov x30, xzr\n\t"
			 "mov x0, x20\n\t"
			 "blr x19\n\t"
			 "mov x8, %[exit]\n\t"
			 "svc 0\n\t"
			 "brk #0\n"
			 "1:"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x19), "r"(x20), [exit] "i"(NR_exit_group)
			 : "memory");
	return x0;
#endif
}

#endif
