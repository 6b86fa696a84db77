/*
 * burrow's early-mounts library, named in the initramfs's /etc/ld.so.preload.
 *
 * Why: a glibc Bun binary aborts before main() when /proc is not mounted (glibc's
 * pthread_getattr_np() reads /proc/self/maps for the main thread), and on minimal kernels
 * also when /dev is not populated. The kernel starts /init with neither. Constructors of
 * preloaded libraries run before the program's main(), so mounting here lets Bun start.
 * Only PID 1 does anything; burrow removes /etc/ld.so.preload once it runs.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((constructor)) static void burrow_early_mounts(void)
{
	if (getpid() != 1)
		return;
	if (access("/proc/self/maps", R_OK) != 0) {
		mkdir("/proc", 0555);
		mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
	}
	/* /dev/kmsg exists on every devtmpfs and is never shipped in the initramfs. */
	if (access("/dev/kmsg", F_OK) != 0) {
		mkdir("/dev", 0755);
		mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	}
}
