"""Pages of list results, and iterators that walk every page (limit/offset, newest first)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Page(Generic[T]):
    """One page of a list: `data`, `total` (rows matching the filters) and `has_more`.

    Iterating a page yields its own items; `auto_paging_iter()` goes on through the
    later pages. Lists are newest first, so objects created meanwhile shift the
    offsets: an item may be seen twice, never skipped.
    """

    def __init__(
        self, data: list[T], *, total: int, has_more: bool, offset: int, fetch: Callable[[int], Page[T]]
    ) -> None:
        self.data = data
        self.total = total
        self.has_more = has_more
        self.offset = offset
        self._fetch = fetch

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"Page(len={len(self.data)}, offset={self.offset}, total={self.total}, has_more={self.has_more})"

    def next_page(self) -> Page[T] | None:
        """The following page, or None after the last."""
        if not self.has_more or not self.data:
            return None
        return self._fetch(self.offset + len(self.data))

    def auto_paging_iter(self) -> Iterator[T]:
        """Every item of this page and of all the pages after it."""
        page: Page[T] | None = self
        while page is not None:
            yield from page.data
            page = page.next_page()


class AsyncPage(Generic[T]):
    """A `Page` of the async client: `await page.next_page()`, `async for x in page.auto_paging_iter()`."""

    def __init__(
        self, data: list[T], *, total: int, has_more: bool, offset: int, fetch: Callable[[int], Awaitable[AsyncPage[T]]]
    ) -> None:
        self.data = data
        self.total = total
        self.has_more = has_more
        self.offset = offset
        self._fetch = fetch

    def __iter__(self) -> Iterator[T]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"AsyncPage(len={len(self.data)}, offset={self.offset}, total={self.total}, has_more={self.has_more})"

    async def next_page(self) -> AsyncPage[T] | None:
        """The following page, or None after the last."""
        if not self.has_more or not self.data:
            return None
        return await self._fetch(self.offset + len(self.data))

    async def auto_paging_iter(self) -> AsyncIterator[T]:
        """Every item of this page and of all the pages after it."""
        page: AsyncPage[T] | None = self
        while page is not None:
            for item in page.data:
                yield item
            page = await page.next_page()
