"""ToffeePay SDK for game servers."""
