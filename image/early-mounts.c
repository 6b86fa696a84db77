/*
 * burrow's early-mounts library, named in the image's /etc/ld.so.preload.
 *
 * Why: a glibc Bun binary aborts before main() when /proc is not mounted (glibc's
 * pthread_getattr_np() reads /proc/self/maps for the main thread), and on minimal kernels
 * also when /dev is not populated. The kernel starts /init with neither. Constructors of
 * preloaded libraries run before the program's main(), so mounting here lets Bun start.
 *
 * The kernel also turns every dot-less KEY=VALUE word of its command line into init's
 * environment, and Bun, JavaScriptCore and glibc read some of those before burrow's first line
 * (BUN_BE_BUN=1 makes the binary the bun CLI; BUN_OPTIONS=--preload=FILE runs FILE). The
 * command line may come from an untrusted host, so PID 1 re-executes itself without them: the
 * loader has already acted on LD_* by now, and a fresh exec is the only clean slate.
 *
 * Only PID 1 does anything; the programs it starts load this library too and skip it.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
/* Generated at build time from src/config/environment.ts: the one list the host, burrow and the supervisor share. */
#include "runtime-env.h"

static const char *const runtime_prefixes[] = RUNTIME_ENV_PREFIXES;

static int steers_runtime(const char *entry)
{
	for (const char *const *prefix = runtime_prefixes; *prefix; prefix++)
		if (strncmp(entry, *prefix, strlen(*prefix)) == 0)
			return 1;
	return 0;
}

/* Name, value pairs; JavaScriptCore reads BUN_JSC_<option> when Bun's main() starts it. */
static const char *const jsc_boot_options[] = {
	"BUN_JSC_thresholdForJITAfterWarmUp", "100000",
	"BUN_JSC_thresholdForJITSoon", "100000",
	"BUN_JSC_thresholdForOptimizeAfterWarmUp", "1000000",
	"BUN_JSC_thresholdForOptimizeSoon", "1000000",
	"BUN_JSC_thresholdForFTLOptimizeAfterWarmUp", "10000000",
	"BUN_JSC_useRegExpJIT", "0",
	NULL,
};

/* The kernel caps init's environment at 32 entries; anything beyond is not from it. */
#define MAX_CLEAN_ENV 64

static void drop_runtime_variables(char **argv, char **envp)
{
	char *clean[MAX_CLEAN_ENV + 1];
	int kept = 0, dropped = 0;

	for (char **entry = envp; entry && *entry; entry++) {
		if (steers_runtime(*entry))
			dropped++;
		else if (kept < MAX_CLEAN_ENV)
			clean[kept++] = *entry;
	}
	if (!dropped)
		return;
	clean[kept] = NULL;
	execve("/proc/self/exe", argv, clean);
	/* No re-exec: at least Bun and JSC, which read the environment in main(), miss them. */
	for (char **entry = envp; entry && *entry;) {
		if (steers_runtime(*entry)) {
			char **rest = entry;
			do
				rest[0] = rest[1];
			while (*++rest);
		} else {
			entry++;
		}
	}
}

__attribute__((constructor)) static void burrow_early_mounts(int argc, char **argv, char **envp)
{
	(void)argc;
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
	drop_runtime_variables(argv, envp);
	/*
	 * burrow's own runtime settings, after the scrub: PID 1 idles for the workload's whole life
	 * (paravisor mode), and Bun's 1 s idle-GC timer would wake it every second for nothing.
	 */
	setenv("BUN_GC_TIMER_DISABLE", "1", 1);
	/*
	 * PID 1 runs most of its code once. JavaScriptCore's defaults JIT-compile a function after
	 * ~500 counted steps, and under emulation (QEMU TCG) every compiled block is new machine code
	 * to translate again: measured ~0.3 s of a 1.5 s micro-kernel boot. Compile only code that is
	 * really hot (the paravisor's loops over memory bitmaps still qualify), and match regular
	 * expressions with the interpreter (each is used a few times on short strings).
	 */
	for (const char *const *option = jsc_boot_options; *option; option += 2)
		setenv(option[0], option[1], 1);
}
