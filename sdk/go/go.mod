module toffeepay.dev/sdk/go

go 1.19
