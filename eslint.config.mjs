// Lint: typescript-eslint's recommended rules plus the layering rule from
// STYLE.md: the engine (gateway/) never imports the edges (admin/, plugins/).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'test-output/**', '**/*.cjs', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-require-imports': 'off',
      'no-console': 'off',
      'no-restricted-properties': ['error', { object: 'AbortSignal', property: 'any', message: 'On Node 20 it leaves an entry on each source for good (nodejs/node#55351): use linkedAbort (gateway/core/linked-abort.ts).' }],
    },
  },
  {
    // gateway/bin holds the process entry points, which wire the edges together.
    files: ['gateway/**/*.ts'],
    ignores: ['gateway/bin/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/admin/**', '**/admin', '**/plugins/**', '**/plugins', '**/bin/**'], message: 'The domain layer must not import processes, admin/ or plugins/.' },
      ] }],
    },
  },
);
