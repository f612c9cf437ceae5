// The addon's own list of error codes (native/error_codes.h, compiled in) is the TypeScript union.
import { ERROR_CODES } from '../../lib/errors';
import { binding } from '../../lib/native';

test('the compiled addon raises codes from the same closed list as lib/error-codes.ts', () => {
  expect([...binding().errorCodes()].sort()).toEqual([...ERROR_CODES].sort());
});
