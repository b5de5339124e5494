import { fail } from '../errors.js';
import type { AeadKey, AeadProvider } from './aead.js';
import { nextTrafficSecret, trafficKey } from './key-schedule.js';

interface Material {
  secret: Uint8Array;
  key: AeadKey;
  iv: Uint8Array;
}

/** A traffic key ready for use, and the IV its nonces are made from. */
export interface KeyMaterial {
  key: AeadKey;
  iv: Uint8Array;
}

/** What one record is protected with: captured synchronously, so records can be sealed concurrently. */
export interface RecordProtection {
  material: Promise<KeyMaterial>;
  /** The same material when it is already derived (a synchronous provider then needs no promise). */
  ready: KeyMaterial | undefined;
  /** Its sequence number: the nonce is `recordNonce(iv, seq)`. */
  seq: number;
}

async function materialOf(aead: AeadProvider, secret: Uint8Array): Promise<Material> {
  const { key, iv } = await trafficKey(secret);
  return { secret, key: await aead.importKey(key), iv };
}

/**
 * One direction of one channel: a traffic secret, its key generations and the implicit sequence number.
 * Every method is synchronous; key derivation runs in the background as a promise chain so that the key
 * a record uses is fixed at the moment its sequence number is taken, whatever order the crypto finishes in.
 */
export class TrafficKeys {
  private material: Promise<Material>;
  /** {@link material} once it has resolved: keys are derived once per generation, used per record. */
  private resolved: Material | undefined;
  private seq = 0;
  /** Key generation (0 after the handshake; +1 per key update). Used as the datagram epoch. */
  generation = 0;

  constructor(
    private readonly aead: AeadProvider,
    secret: Uint8Array,
    private readonly maxSeq: number,
  ) {
    this.material = materialOf(aead, secret);
    this.track();
  }

  /** Remembers the current generation's material once derived. */
  private track(): void {
    const pending = this.material;
    pending.then(
      (m) => {
        if (this.material === pending) this.resolved = m;
      },
      // The material is awaited by every record; a rejection here is reported there.
      () => {},
    );
  }

  /** Whether the current generation's key is derived: a record taken now can be protected at once. */
  get ready(): boolean {
    return this.resolved !== undefined;
  }

  /** Records protected under the current generation so far. */
  get used(): number {
    return this.seq;
  }

  /** Takes the next sequence number under the current key. */
  next(): RecordProtection {
    if (this.seq > this.maxSeq)
      throw fail('sequence_overflow', 'sequence number exhausted; a key update is needed');
    const seq = this.seq++;
    return { material: this.material, ready: this.resolved, seq };
  }

  /** Switches to the next key generation (PROTOCOL.md §4.5); sequence numbers restart at 0. */
  rotate(): void {
    const aead = this.aead;
    this.material = this.material.then(async (m) => materialOf(aead, await nextTrafficSecret(m.secret)));
    this.resolved = undefined;
    this.track();
    this.seq = 0;
    this.generation++;
  }
}
