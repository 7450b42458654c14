// scripts/kafka.mjs: its pure parts (the broker itself is exercised by every other test here).
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { newClusterId, parseCli, renderTemplate } from '../../scripts/kafka.mjs';

describe('kafka script', () => {
  it('renders the broker template with every placeholder filled and refuses a missing one', () => {
    const template = fs.readFileSync(new URL('../../kafka/server.properties.template', import.meta.url), 'utf8');
    const props = renderTemplate(template, { PORT: 19092, CONTROLLER_PORT: 19093, DATA_DIR: '/tmp/d' });
    expect(props).not.toMatch(/\$\{/);
    expect(props).toMatch(/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:19092,CONTROLLER:\/\/127\.0\.0\.1:19093$/m);
    expect(props).toMatch(/^auto\.create\.topics\.enable=false$/m);
    expect(props).toMatch(/^offsets\.topic\.replication\.factor=1$/m);
    expect(() => renderTemplate('x=${NOPE}', {})).toThrow('NOPE');
  });

  it('makes cluster ids in the form Kafka expects', () => {
    for (let i = 0; i < 50; i++) expect(newClusterId()).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/);
  });

  it('validates its command line', () => {
    expect(parseCli(['up', '--port', '19092', '--topics', 'a.trades,b.prices'])).toMatchObject({
      command: 'up',
      port: 19092,
      topics: ['a.trades', 'b.prices'],
      problems: [],
    });
    expect(parseCli(['launch']).problems[0]).toContain('install|up|down|status');
    expect(parseCli(['up', '--port', '80']).problems[0]).toContain('--port');
    expect(parseCli(['up', '--topics', 'bad topic']).problems[0]).toContain('--topics');
    expect(() => parseCli(['up', '--nope'])).toThrow();
  });
});
