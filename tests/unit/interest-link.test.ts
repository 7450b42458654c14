import { describe, expect, it } from 'vitest';
import { InterestLink } from '../../app/shard/interest-link.js';

type Msg = { t: 'interest'; seq: number; add: string[]; remove: string[] };
const turn = () => new Promise((r) => setImmediate(r));

function link() {
  const sent: Msg[] = [];
  const l = new InterestLink((m) => (sent.push(m), true));
  return { l, sent };
}

describe('InterestLink', () => {
  it('coalesces one turn of changes into one message', async () => {
    const { l, sent } = link();
    for (let i = 0; i < 100; i++) l.want(`trades:T${i}`);
    await turn();
    expect(sent).toHaveLength(1);
    expect(sent[0].add).toHaveLength(100);
    expect(sent[0].remove).toEqual([]);
  });

  it('keeps one batch in flight; what changes meanwhile waits as one entry per channel', async () => {
    const { l, sent } = link();
    l.want('trades:A');
    await turn();
    expect(sent).toHaveLength(1);
    // Heavy churn while the front has not acked: nothing more is sent, the backlog is bounded.
    for (let round = 0; round < 1000; round++) {
      for (let i = 0; i < 100; i++) l.want(`trades:C${i}`);
      for (let i = 0; i < 100; i++) l.drop(`trades:C${i}`);
      await turn();
    }
    l.want('trades:B');
    expect(sent).toHaveLength(1);
    expect(l.pending).toBeLessThanOrEqual(101);
    l.acked(sent[0].seq);
    expect(sent).toHaveLength(2);
    // Churned channels that ended unwanted cancelled out; only B goes.
    expect(sent[1]).toMatchObject({ add: ['trades:B'], remove: [] });
  });

  it('gates a subscribe until the batch carrying it is acked, not before', async () => {
    const { l, sent } = link();
    l.want('trades:A');
    let done = false;
    void l.gate('trades:A')!.then(() => (done = true));
    await turn();
    expect(done).toBe(false);
    l.acked(sent[0].seq + 1); // an unrelated seq changes nothing
    await turn();
    expect(done).toBe(false);
    l.acked(sent[0].seq);
    await turn();
    expect(done).toBe(true);
    expect(l.gate('trades:A')).toBeNull(); // the front has it: later subscribers do not wait
  });

  it('a channel dropped and wanted again before the removal went out is never removed', async () => {
    const { l, sent } = link();
    l.want('trades:A');
    await turn();
    l.acked(sent[0].seq);
    l.drop('trades:A');
    l.want('trades:A');
    expect(l.gate('trades:A')).toBeNull();
    await turn();
    expect(sent).toHaveLength(1);
  });

  it('re-wanting a channel whose add is in flight waits for that ack', async () => {
    const { l, sent } = link();
    l.want('trades:A');
    await turn();
    l.drop('trades:A');
    l.want('trades:A');
    const g = l.gate('trades:A');
    expect(g).not.toBeNull();
    let done = false;
    void g!.then(() => (done = true));
    l.acked(sent[0].seq);
    await turn();
    expect(done).toBe(true);
    await turn();
    expect(sent).toHaveLength(1); // the drop/want pair cancelled out
  });

  it('sends removals, and stop() releases every waiting gate', async () => {
    const { l, sent } = link();
    l.want('trades:A');
    l.want('trades:B');
    await turn();
    l.acked(sent[0].seq);
    l.drop('trades:A');
    await turn();
    expect(sent[1]).toMatchObject({ add: [], remove: ['trades:A'] });
    l.want('trades:C');
    let released = false;
    void l.gate('trades:C')!.then(() => (released = true));
    l.stop();
    await turn();
    expect(released).toBe(true);
  });
});
