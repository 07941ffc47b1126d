"""Tools for developing a game against ToffeePay: `toffeepay sessions|events|trigger|listen`."""
