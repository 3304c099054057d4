// Action scripts (CRIU's names): points of a dump or restore where the caller acts, through
// `--action-script` programs or RPC notifications. A failed action throws and fails the
// operation, as in CRIU.

export type ActionName =
  | 'pre-dump'
  | 'post-dump'
  | 'pre-restore'
  | 'post-restore'
  | 'network-lock'
  | 'network-unlock'
  | 'setup-namespaces'
  | 'post-setup-namespaces'
  | 'pre-resume'
  | 'post-resume'
  | 'orphan-pts-master'
  | 'status-ready'
  | 'query-ext-files';

/** Runs one action; `pid` is the restored root's (setup-namespaces, post-restore). */
export type RunAction = (name: ActionName, pid?: number) => void;
