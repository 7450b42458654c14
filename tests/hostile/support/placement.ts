// The kernel spreads connections over the shards (SO_REUSEPORT), so a test that needs a client on
// EACH shard opens them one at a time and reads /health to see where each one landed.
import { TestClient } from '../../support/client.js';
import { getHealth, until, type RunningServer } from '../../support/server.js';

const shardConnections = async (srv: RunningServer): Promise<number[]> => (await getHealth(srv.healthUrl)).body.shards.map((s: any) => s.connections);

/** `perShard` open clients on every shard (result[i] are shard i's); the extras are closed. */
export async function clientsOnEveryShard(srv: RunningServer, perShard: number, maxTries = 60): Promise<TestClient[][]> {
  let counts = await shardConnections(srv);
  const placed: TestClient[][] = counts.map(() => []);
  const extras: TestClient[] = [];
  for (let i = 0; i < maxTries && placed.some((p) => p.length < perShard); i++) {
    const c = await TestClient.connect(srv.wsUrl);
    const before = counts;
    const after = await until(async () => {
      const now = await shardConnections(srv);
      return now.reduce((a, b) => a + b, 0) > before.reduce((a, b) => a + b, 0) ? now : null;
    }, 'the new connection counted');
    const shard = after.findIndex((n, k) => n > before[k]);
    counts = after;
    if (shard >= 0 && placed[shard].length < perShard) placed[shard].push(c);
    else extras.push(c);
  }
  for (const c of extras) c.close();
  if (placed.some((p) => p.length < perShard)) throw new Error(`could not place ${perShard} clients on every shard: ${placed.map((p) => p.length)}`);
  await until(async () => (await shardConnections(srv)).every((n) => n === perShard), 'extras closed');
  return placed;
}
