import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { workload } from '/work/main/test/lib/workloads.ts';
import { startDetached, waitFor, tmpdir } from '/work/main/bench/common.ts';
import { waitpid, WALL, setChildSubreaper } from '/work/main/src/kernel/index.ts';
setChildSubreaper();
const mode = process.argv[2] ?? 'src';
const dir = tmpdir('p100');
const log = dir + '/t.log';
const spec = process.argv[3] === 'threads' ? [workload('threads'), '-n', '64', '-i', '100'] : [workload('tree'), 'p(p(p*9)*9 p*9)'];
const pid = startDetached(spec, log);
await waitFor(log, process.argv[3] === 'threads' ? /^ready threads=64$/m : /^ready n=100$/m);
fs.mkdirSync(dir + '/img');
const entry = mode === 'bundle' ? ['/work/main/.cache/bundle/main.mjs'] : ['--disable-warning=ExperimentalWarning', '/work/main/src/cli/main.ts'];
const prof = process.env.PROF ? ['--cpu-prof', '--cpu-prof-dir=' + process.env.PROF] : [];
const kids = new Map<number, number[]>();
for (const n of fs.readdirSync('/proc')) { if (!/^\d+$/.test(n)) continue; let st: string; try { st = fs.readFileSync(`/proc/${n}/stat`, 'latin1'); } catch { continue; } const pp = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]); (kids.get(pp) ?? kids.set(pp, []).get(pp)!).push(Number(n)); }
const before = [pid]; for (let k = 0; k < before.length; k++) before.push(...(kids.get(before[k]) ?? []));
let t = performance.now();
let r = spawnSync('/work/main/node_modules/.bin/node', [...prof, ...(process.env.NODEFLAGS ?? '--max-semi-space-size=4').split(' '), ...entry, 'dump', '-t', String(pid), '-D', dir + '/img', '-o', 'dump.log'], { stdio: 'inherit', env: { ...process.env, NODE_COMPILE_CACHE: '/work/main/.cache/node-compile' } });
const d = performance.now() - t;
for (const p of before) { try { waitpid(p, WALL); } catch {} }
t = performance.now();
r = spawnSync('/work/main/node_modules/.bin/node', [...prof, ...(process.env.NODEFLAGS ?? '--max-semi-space-size=4').split(' '), ...entry, 'restore', '-D', dir + '/img', '-d', '-o', 'restore.log'], { stdio: 'inherit', env: { ...process.env, NODE_COMPILE_CACHE: '/work/main/.cache/node-compile' } });
const rs = performance.now() - t;
console.log(`dump ${d.toFixed(0)} restore ${rs.toFixed(0)} status ${r.status}`);
console.log(dir); spawnSync('pkill', ['-9', '-f', spec[0]]);
