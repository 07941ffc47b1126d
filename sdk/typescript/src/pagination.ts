/**
 * One page of a list: `data`, `total` (rows matching the filters), `hasMore`.
 *
 * `for await (const item of page)` walks this page and every later one. Lists are newest
 * first, so objects created meanwhile shift the offsets: an item may be seen twice, never
 * skipped.
 */
export class Page<T> implements AsyncIterable<T> {
  constructor(
    readonly data: T[],
    readonly total: number,
    readonly hasMore: boolean,
    readonly offset: number,
    private readonly fetch: (offset: number) => Promise<Page<T>>,
  ) {}

  /** The following page, or null after the last. */
  async nextPage(): Promise<Page<T> | null> {
    if (!this.hasMore || this.data.length === 0) return null;
    return this.fetch(this.offset + this.data.length);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let page: Page<T> | null = this;
    while (page !== null) {
      yield* page.data;
      page = await page.nextPage();
    }
  }

  /** Every item of this page and the later ones, in one array (mind large lists). */
  async all(): Promise<T[]> {
    const items: T[] = [];
    for await (const item of this) items.push(item);
    return items;
  }
}
