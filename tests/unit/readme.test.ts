import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../app/config/config.js';
import { ErrorCode } from '../../app/common/errors.js';

const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

describe('README', () => {
  it('documents every setting with its env var and flag', () => {
    for (const s of Object.values(SETTINGS)) {
      expect(readme, s.env).toContain(`| \`${s.env}\` | \`--${s.flag}\` |`);
    }
  });
  it('documents every client error code', () => {
    for (const code of Object.values(ErrorCode)) expect(readme, code).toContain(`| \`${code}\` |`);
  });
  it('gives the two commands', () => {
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('npm test');
  });
});
