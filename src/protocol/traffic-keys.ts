import { fail } from '../errors.js';
import type { AeadKey, AeadProvider } from './aead.js';
import { nextTrafficSecret, recordNonce, trafficKey } from './key-schedule.js';

interface Material {
  secret: Uint8Array;
  key: AeadKey;
  iv: Uint8Array;
}

/** What one record is protected with: captured synchronously, so records can be sealed concurrently. */
export interface RecordProtection {
  material: Promise<{ key: AeadKey; iv: Uint8Array }>;
  seq: number;
  nonce(iv: Uint8Array): Uint8Array;
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
  private seq = 0;
  /** Key generation (0 after the handshake; +1 per key update). Used as the datagram epoch. */
  generation = 0;

  constructor(
    private readonly aead: AeadProvider,
    secret: Uint8Array,
    private readonly maxSeq: number,
  ) {
    this.material = materialOf(aead, secret);
    // The material is awaited by every record; a rejection here would be reported there.
    this.material.catch(() => {});
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
    return { material: this.material, seq, nonce: (iv) => recordNonce(iv, seq) };
  }

  /** Switches to the next key generation (PROTOCOL.md §4.5); sequence numbers restart at 0. */
  rotate(): void {
    const aead = this.aead;
    this.material = this.material.then(async (m) => materialOf(aead, await nextTrafficSecret(m.secret)));
    this.material.catch(() => {});
    this.seq = 0;
    this.generation++;
  }
}
