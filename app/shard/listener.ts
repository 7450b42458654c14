// The shard's public listener: every shard binds the same port with SO_REUSEPORT and the kernel
// spreads new connections over them, so connection setup never passes through one process.
// Connections arrive paused (unread), so one the admission gate says to pass on can be relayed to
// another shard with nothing lost; the rest go straight to this shard's HTTP edge.
import net from 'node:net';

export interface ListenerDeps {
  /** Why this connection should go to another shard instead, or null to serve it here. */
  relayCause(): string | null;
  relay(socket: net.Socket, cause: string): void;
  serve(socket: net.Socket): void;
  /** accept() failed (EMFILE, ENFILE...): counted, never fatal. */
  onAcceptError(err: NodeJS.ErrnoException): void;
}

export class PublicListener {
  private readonly server: net.Server;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly deps: ListenerDeps,
  ) {
    this.server = net.createServer({ pauseOnConnect: true }, (socket) => {
      socket.on('error', () => socket.destroy());
      const cause = this.deps.relayCause();
      if (cause) this.deps.relay(socket, cause);
      else this.deps.serve(socket);
    });
    this.server.on('error', (err: NodeJS.ErrnoException) => this.deps.onAcceptError(err));
  }

  /** Binds `port` (0 picks one) in the shared group; resolves with the bound port. */
  listen(port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.host, port, reusePort: true, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Leaves the group: the kernel stops sending new connections here. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server.close();
  }
}
