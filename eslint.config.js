// ESLint flat config: JavaScript's recommended rules everywhere, typescript-eslint's type-aware
// recommended rules for the TypeScript sources (the compiler already checks types; these catch what it
// does not: floating promises, unsafe `any` flows, unnecessary assertions). Formatting is Prettier's job.
//
//   npm run lint        (eslint + prettier --check + clang-format --dry-run)

import js from '@eslint/js';
import globals from 'globals';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** `_name` marks a parameter an interface requires but this implementation does not use; `{ dropped, ...kept }` drops. */
const UNUSED = { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true };

export default defineConfig(
  { ignores: ['dist/', 'build/', 'node_modules/', 'runs/', 'experiments/results/'] },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', UNUSED],
      // node:test's describe/it return promises that the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['describe', 'it', 'test', 'suite'] },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
    rules: { 'no-unused-vars': ['error', UNUSED] },
  },
);
