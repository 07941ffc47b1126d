package toffeepay

import "context"

// Page is one page of a list: Data, Total (rows matching the filters) and HasMore.
// Lists are newest first, so objects created meanwhile shift the offsets: an item may be
// seen twice, never skipped.
type Page[T any] struct {
	Data    []T
	Total   int32
	HasMore bool
	Offset  int32
	fetch   func(ctx context.Context, offset int32) (*Page[T], error)
}

// NextPage fetches the following page; it returns nil, nil after the last.
func (p *Page[T]) NextPage(ctx context.Context) (*Page[T], error) {
	if !p.HasMore || len(p.Data) == 0 {
		return nil, nil
	}
	return p.fetch(ctx, p.Offset+int32(len(p.Data)))
}

// Iter walks this page and every later one:
//
//	it := page.Iter()
//	for it.Next(ctx) {
//		use(it.Value())
//	}
//	if err := it.Err(); err != nil { ... }
func (p *Page[T]) Iter() *Iter[T] { return &Iter[T]{page: p, index: -1} }

// Iter is an iterator over the items of a page and the pages after it.
type Iter[T any] struct {
	page  *Page[T]
	index int
	err   error
}

// Next moves to the next item, fetching the next page when needed; false at the end or on an error.
func (it *Iter[T]) Next(ctx context.Context) bool {
	for it.page != nil && it.err == nil {
		if it.index+1 < len(it.page.Data) {
			it.index++
			return true
		}
		it.page, it.err = it.page.NextPage(ctx)
		it.index = -1
	}
	return false
}

// Value is the current item.
func (it *Iter[T]) Value() T { return it.page.Data[it.index] }

// Err is the error that stopped the iteration, if any.
func (it *Iter[T]) Err() error { return it.err }

// listPage makes the first page of a list RPC and how to fetch the ones after it.
func listPage[T any, A any](ctx context.Context, offset int32, call func(context.Context, int32) (*A, error), read func(*A) ([]T, int32, bool)) (*Page[T], error) {
	var fetch func(ctx context.Context, at int32) (*Page[T], error)
	fetch = func(ctx context.Context, at int32) (*Page[T], error) {
		answer, err := call(ctx, at)
		if err != nil {
			return nil, err
		}
		data, total, more := read(answer)
		return &Page[T]{Data: data, Total: total, HasMore: more, Offset: at, fetch: fetch}, nil
	}
	return fetch(ctx, offset)
}
