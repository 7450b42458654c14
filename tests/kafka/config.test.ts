// KAFKA_* parsing and the record -> message mapping (pure; no broker).
import { describe, expect, it } from 'vitest';
import { parseKafkaConfig } from '../../app/kafka/config.js';
import { createRecordMapper } from '../../app/kafka/record-mapper.js';

const streams = ['trades', 'prices'];

describe('parseKafkaConfig', () => {
  it('is null without KAFKA_BROKERS (the server uses its embedded feed)', () => {
    expect(parseKafkaConfig({}, streams)).toEqual({ ok: true, value: null });
    expect(parseKafkaConfig({ KAFKA_BROKERS: '' }, streams)).toEqual({ ok: true, value: null });
  });

  it('fills the defaults of the system it replaces', () => {
    const r = parseKafkaConfig({ KAFKA_BROKERS: '10.0.0.2:9092, kafka-1:9093', NODE_ENV: 'production' }, streams);
    expect(r).toEqual({
      ok: true,
      value: {
        brokers: ['10.0.0.2:9092', 'kafka-1:9093'],
        topics: ['odin.trades', 'odin.prices'],
        group: 'ws-server-production',
        batchSize: 50,
        batchTimeoutMs: 10,
        maxRecordBytes: 65_536,
        fromBeginning: false,
        streams,
      },
    });
    expect(Object.isFrozen(r.ok && r.value)).toBe(true);
  });

  it('takes every setting from the environment', () => {
    const r = parseKafkaConfig(
      {
        KAFKA_BROKERS: '127.0.0.1:1',
        KAFKA_TOPICS: 'x.prices',
        KAFKA_CONSUMER_GROUP: 'ws-vm-2',
        KAFKA_BATCH_SIZE: '7',
        KAFKA_BATCH_TIMEOUT_MS: '3',
        KAFKA_MAX_RECORD_BYTES: '1000',
        KAFKA_FROM_BEGINNING: 'true',
        ODIN_ENV: 'staging',
      },
      streams,
    );
    expect(r.ok && r.value).toMatchObject({ topics: ['x.prices'], group: 'ws-vm-2', batchSize: 7, batchTimeoutMs: 3, maxRecordBytes: 1000, fromBeginning: true });
    expect(parseKafkaConfig({ KAFKA_BROKERS: 'h:1', ODIN_ENV: 'staging' }, streams)).toMatchObject({ value: { group: 'ws-server-staging' } });
  });

  it('reports every bad value at once, naming the variable', () => {
    const r = parseKafkaConfig(
      {
        KAFKA_BROKERS: 'nohost,ok:9092,bad:99999',
        KAFKA_TOPICS: 'odin.trades,odin.candles,bad topic',
        KAFKA_CONSUMER_GROUP: 'has space',
        KAFKA_BATCH_SIZE: '0',
        KAFKA_BATCH_TIMEOUT_MS: 'soon',
        KAFKA_MAX_RECORD_BYTES: '-1',
        KAFKA_FROM_BEGINNING: 'maybe',
      },
      streams,
    );
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    for (const needle of [
      'KAFKA_BROKERS: "nohost"',
      'KAFKA_BROKERS: "bad:99999"',
      'odin.candles maps to stream "candles"',
      'KAFKA_TOPICS: "bad topic"',
      'KAFKA_CONSUMER_GROUP',
      'KAFKA_BATCH_SIZE',
      'KAFKA_BATCH_TIMEOUT_MS',
      'KAFKA_MAX_RECORD_BYTES',
      'KAFKA_FROM_BEGINNING',
    ]) {
      expect(problems.some((p) => p.includes(needle)), needle).toBe(true);
    }
  });
});

describe('record mapper', () => {
  const map = createRecordMapper({ streams, maxRecordBytes: 100, now: () => 42 });
  const rec = (key: string | null, value: string | null, timestamp = '1764300000123') => ({
    key: key === null ? null : Buffer.from(key),
    value: value === null ? null : Buffer.from(value),
    timestamp,
    offset: '7',
  });

  it('maps topic -> stream, key -> token, value text -> data unchanged, timestamp -> ts', () => {
    expect(map('odin.trades', 3, rec('ODIN42', ' {"a": 1 } '))).toEqual({
      ok: true,
      message: { stream: 'trades', token: 'ODIN42', ts: 1764300000123, data: ' {"a": 1 } ', origin: 'p3', offset: 7 },
    });
    expect(map('prices', 0, rec('x', '{}', '-1'))).toMatchObject({ ok: true, message: { stream: 'prices', ts: 42 } });
  });

  it.each([
    ['odin.candles', 'A', '{}', 'unknown_topic'],
    ['odin.trades', null, '{}', 'no_key'],
    ['odin.trades', '', '{}', 'no_key'],
    ['odin.trades', 'a:b', '{}', 'bad_key'],
    ['odin.trades', 'é', '{}', 'bad_key'],
    ['odin.trades', 'K'.repeat(65), '{}', 'bad_key'],
    ['odin.trades', 'A', null, 'not_json'],
    ['odin.trades', 'A', '{oops', 'not_json'],
    ['odin.trades', 'A', '[1]', 'not_object'],
    ['odin.trades', 'A', 'null', 'not_object'],
    ['odin.trades', 'A', '7', 'not_object'],
    ['odin.trades', 'A', `{"p":"${'x'.repeat(100)}"}`, 'oversized'],
  ])('rejects %s key=%j value=%j as %s', (topic, key, value, reason) => {
    expect(map(topic, 0, rec(key, value))).toEqual({ ok: false, reason });
  });
});
