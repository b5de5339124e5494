// Types of scripts/netns.mjs (plain JS so scripts/test.mjs can run it before dependencies are checked).
export declare const NETNS_ENV: string;
export declare function loopbackNamespace(): [string, string[]] | null;
export declare function reexecInLoopbackNamespace(
  packages?: ReadonlyArray<readonly [string, string]>,
): boolean;
