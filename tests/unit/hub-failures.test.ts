// The hub's failure classes: the database away is waited out, a refused value is per entry, and a bug
// (TypeError, anything without a database code) is never retried in a loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { retryWithBackoff } from '../../core/backoff.ts';
import { isDataError, isTransientDbError } from '../../services/hub/failures.ts';

const pgError = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('connection errors and SQLSTATE 08, 53, 57P0x, 40001 are transient', () => {
  for (const code of [
    'ECONNREFUSED',
    'ECONNRESET',
    'ETIMEDOUT',
    '08006',
    '08001',
    '53300',
    '57P01',
    '57P03',
    '40001',
    '40P01',
  ])
    assert.equal(isTransientDbError(pgError(code)), true, code);
  assert.equal(isTransientDbError(new Error('Connection terminated unexpectedly')), true);
  assert.equal(isTransientDbError(new Error('timeout exceeded when trying to connect')), true);
});

test('data errors, SQL errors and bugs are not transient', () => {
  for (const code of ['22P05', '22001', '23505', '23514', '42P01', '42703', '57014', 'XX000'])
    assert.equal(isTransientDbError(pgError(code)), false, code);
  assert.equal(
    isTransientDbError(new TypeError("Cannot read properties of undefined (reading 'id')")),
    false,
  );
  assert.equal(isTransientDbError(new RangeError('Invalid array length')), false);
  assert.equal(isTransientDbError('a string'), false);
  assert.equal(isTransientDbError(undefined), false);
  assert.equal(isTransientDbError({ code: '08006' }), false, 'not an Error at all');
});

test('data errors are SQLSTATE classes 22 and 23 only', () => {
  assert.equal(isDataError(pgError('22P05')), true);
  assert.equal(isDataError(pgError('23514')), true);
  assert.equal(isDataError(pgError('08006')), false);
  assert.equal(isDataError(new TypeError('x')), false);
});

test('the retry loop gives up on a bug at once instead of spinning', async () => {
  let calls = 0;
  await assert.rejects(
    retryWithBackoff(
      async () => {
        calls++;
        throw new TypeError('bug');
      },
      { policy: { initialMs: 1, maxMs: 1 }, retryable: isTransientDbError, shouldStop: () => calls >= 5 },
    ),
    TypeError,
  );
  assert.equal(calls, 1);
});
