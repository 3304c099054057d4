// Counts type assertions (`x as T`, `<T>x`) in src/, `as const` excepted, by file: the figure
// that shows how far the compiler, not casts, checks the code.
import ts from 'typescript';
import fs from 'node:fs';
import path from 'node:path';

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

const root = process.argv[2] ?? 'src';
const counts: Array<[string, number]> = [];
for (const file of walk(root)) {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  let n = 0;
  const visit = (node: ts.Node): void => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) {
      const t = node.type;
      if (!(ts.isTypeReferenceNode(t) && t.typeName.getText(sf) === 'const')) n++;
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  if (n) counts.push([file, n]);
}
counts.sort((a, b) => b[1] - a[1]);
const verbose = process.argv.includes('-v');
if (verbose) for (const [f, n] of counts) console.log(`${String(n).padStart(4)} ${f}`);
console.log(`casts: ${counts.reduce((s, [, n]) => s + n, 0)} in ${counts.length} files under ${root}`);
