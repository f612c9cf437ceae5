// Lint for the TypeScript (lib/, test/, bench/ JS, scripts/ JS). `npm run lint` runs it with prettier and
// clang-format; `npm test` runs lint first.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');

module.exports = tseslint.config(
  { ignores: ['dist/', 'build/', 'models/', 'node_modules/', 'prebuilds/', 'out/', 'test/.cache/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['lib/viewer/assets/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...require('globals').browser } },
  },
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'commonjs', globals: { ...require('globals').node } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
);
