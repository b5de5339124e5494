/**
 * Pages of a room's member list (issue 17, point 4). Before paging, every `room:join` and
 * `room:members` answer held the whole room: 20 spammers of a 61-member room drew 1.85 MB/s of member
 * lists. An answer now holds at most `MAX_MEMBERS_PAGE` peerIds after a cursor, in peerId order.
 */
import { MAX_MEMBERS_PAGE } from '../src/signaling/messages.js';

/** One answer: the page, and, when the list is paged, the room's size and the next page's cursor. */
export interface MemberPage {
  members: string[];
  count?: number;
  next?: string;
}

/**
 * The members of `sorted` (ascending, distinct) after `after` (from the first when undefined), at most
 * `limit` of them (capped at MAX_MEMBERS_PAGE). `count` and `next` are set only when the list is paged
 * (another page follows, or `after` was given): a room that fits one page is answered `{members}` as
 * before paging, which older clients' strict answer schema requires.
 */
export function memberPage(sorted: readonly string[], after: string | undefined, limit?: number): MemberPage {
  const size = Math.min(limit ?? MAX_MEMBERS_PAGE, MAX_MEMBERS_PAGE);
  const start = after === undefined ? 0 : firstAfter(sorted, after);
  const members = sorted.slice(start, start + size);
  const more = start + size < sorted.length;
  if (!more && after === undefined) return { members };
  const page: MemberPage = { members, count: sorted.length };
  if (more) page.next = members[members.length - 1]!;
  return page;
}

/** Index of the first element of `sorted` greater than `after` (binary search). */
function firstAfter(sorted: readonly string[], after: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
