// Every variable a VM env file sets is one the app on that VM reads, and every setting the app
// cannot start without is set. (The publisher once got KAFKA_TOPICS while it reads PUBLISHER_TOPICS.)
import { describe, expect, it } from 'vitest';
import { SETTINGS as SERVER_SETTINGS } from '../../app/config/config.js';
import { parseKafkaConfig } from '../../app/kafka/config.js';
import { SETTINGS as PUBLISHER_SETTINGS, parsePublisherConfig } from '../../app/publisher/config.js';
import { AUTH_SECRET_FILE_ENV } from '../../stacks/vm-scripts.js';
import { parseEnvFile, stagedFile, startupScript, synthAll } from './helpers.js';

const { stacks } = synthAll({ kafka: { topics: ['feed.trades', 'feed.prices'], partitions: 6 } }); // not the apps' defaults
const envNames = (settings: Record<string, { env: string }>) => new Set(Object.values(settings).map((s) => s.env));

describe('VM env files against the settings the app reads', () => {
  it('/etc/odin/ws.env sets only server settings (WS_*) and the Kafka source settings it parses (KAFKA_*)', () => {
    const file = parseEnvFile(stagedFile(startupScript(stacks.ws), '/etc/odin/ws.env'));
    const env = Object.keys(file);
    const known = envNames(SERVER_SETTINGS);
    const kafka = env.filter((k) => k.startsWith('KAFKA_'));
    expect(env.filter((k) => !known.has(k) && !kafka.includes(k))).toEqual([]);
    // (The server has no setting without a default: nothing it requires can be missing.)
    // The Kafka part is read: each variable changes what the parser returns.
    const parsed = parseKafkaConfig(file, ['trades', 'prices']);
    expect(parsed.ok && parsed.value).toMatchObject({ brokers: ['10.10.0.10:9092'], topics: ['feed.trades', 'feed.prices'], group: 'ws-server-test' });
    for (const k of kafka) {
      const without = parseKafkaConfig({ ...file, [k]: undefined }, ['trades', 'prices']);
      expect(JSON.stringify(without), `${k} is not read by the server`).not.toBe(JSON.stringify(parsed));
    }
  });

  it('/etc/odin/publisher.env sets only publisher settings, and every required one (brokers)', () => {
    const file = parseEnvFile(stagedFile(startupScript(stacks.backend), '/etc/odin/publisher.env'));
    const env = Object.keys(file);
    const known = envNames(PUBLISHER_SETTINGS);
    expect(env.filter((k) => !known.has(k))).toEqual([]);
    expect(parsePublisherConfig({}, []).ok).toBe(false); // it needs brokers...
    const parsed = parsePublisherConfig(file, []);
    expect(parsed.ok && parsed.config).toMatchObject({ brokers: ['127.0.0.1:9092'], topics: ['feed.trades', 'feed.prices'], port: 3003 }); // ...and gets them

  });

  it('the auth env file the WS startup script writes names the agreed variable', () => {
    expect(AUTH_SECRET_FILE_ENV).toBe('WS_AUTH_SECRET_FILE');
    expect(envNames(SERVER_SETTINGS).has(AUTH_SECRET_FILE_ENV)).toBe(true);
    expect(startupScript(stacks.ws)).toContain(`echo "${AUTH_SECRET_FILE_ENV}=/etc/odin/auth-secret" >"$ODIN_STAGE/etc/odin/ws-auth.env"`);
  });
});
