// CRIU's command-line options that criu-ts knows of but does not implement yet: they are
// refused by name, never silently ignored. Options that only tune CRIU's own internals are
// accepted and have no effect.

/** Accepted, no effect: they tune how CRIU works inside, not what a dump or restore is. */
export const ACCEPTED_INTERNAL = new Set([
  '--ghost-fiemap',
  '--no-ghost-fiemap',
  '--pre-dump-mode',
  '--libdir',
  '-L',
  '--log-pid',
  '--no-display-stats',
  // CRIU's choice of its mount engine; criu-ts has the one mount-v2 style engine.
  '--mntns-compat-mode',
  '--no-mntns-compat-mode',
  '--display-stats',
]);
/** Of these, the ones that take a value. */
export const INTERNAL_WITH_VALUE = new Set(['--pre-dump-mode', '--libdir', '-L']);

export const NOT_SUPPORTED = new Set([
  '--cgroup-props',
  '--cgroup-props-file',
  '--cgroup-dump-controller',
  '--lazy-pages',
  '--auto-dedup',
  '--cpu-cap',
  '--evasive-devices',
  '--enable-fs',
  '--skip-mnt',
  '--file-validation',
  '--allow-uprobes',
  '--lsm-profile',
  '--lsm-mount-context',
  '-S',
  '--restore-sibling',
  '-s',
  '--leave-stopped',
  '-J',
  '--weak-sysctls',
  '--skip-file-rwx-check',
  '--stream',
  '--unprivileged',
  '--close',
  '--config',
  '--tls',
  '--tls-cacert',
  '--tls-cacrl',
  '--tls-cert',
  '--tls-key',
  '--tls-no-cn-verify',
  '--status-fd',
  '--ps-socket',
  '--exec-cmd',
  '--deprecated',
  '--timens',
]);
