// Docker Compose's variable interpolation as the deploy tests need it: `${NAME}`, `${NAME:-default}`,
// `${NAME?error}` from a sample .env (a name missing from it fails the test), `$$` for a literal `$`.
import assert from 'node:assert/strict';

export function composeInterpolator(env: Record<string, string>): (s: string) => string {
  return (s) =>
    s.replace(/\$\$|\$\{(\w+)(?::?[-?][^}]*)?\}/g, (m, name: string | undefined) => {
      if (m === '$$') return '$';
      const v = env[name!];
      assert.ok(v !== undefined, `${name} is not in the sample .env`);
      return v;
    });
}
