"""Pure rules of ToffeePay: no I/O, no framework imports."""
