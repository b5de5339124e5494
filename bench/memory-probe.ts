/**
 * Preloaded into both relays of bench/signaling.ts (`--expose-gc --import ./bench/memory-probe.ts`, the
 * same for each): on SIGUSR2 the process collects its garbage, then prints one line on stdout,
 * `memory ` and `process.memoryUsage()` as JSON, with `heap` for `heapUsed`. Read this way, memory per
 * connection is what a connection keeps, not how far the collector happened to lag behind at the moment
 * of reading: without a collection, p2ptls's heap per connection read 12.6–20.1 KiB within one
 * invocation, 2.5–4 KiB above what a heap snapshot found retained (docs/BENCHMARKS.md, "Signaling memory
 * per connection").
 */
const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error('bench/memory-probe.ts needs node --expose-gc');

process.on('SIGUSR2', () => {
  // Twice: the first collection's finalizers and weak callbacks free more for the second.
  collect();
  collect();
  // 50 ms later: V8 hands freed pages back to the system from a background task, which RSS read at once
  // might not show yet (a precaution, not measured).
  setTimeout(() => {
    const m = process.memoryUsage();
    process.stdout.write(`memory ${JSON.stringify({ ...m, heap: m.heapUsed })}\n`);
  }, 50);
});
