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
    },
  },
  {
    files: ['gateway/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/admin/**', '**/admin', '**/plugins/**', '**/plugins'], message: 'gateway/ is the engine: it must not import admin/ or plugins/ (imports point one way).' },
      ] }],
    },
  },
  {
    files: ['gateway/{core,models,mail,crm,sync,store}/**/*.ts'],
    ignores: ['gateway/bin/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['**/admin/**', '**/admin', '**/plugins/**', '**/plugins', '**/bin/**'], message: 'The domain layer must not import processes, admin/ or plugins/.' },
      ] }],
    },
  },
);
