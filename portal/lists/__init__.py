"""Back-office lists of the portal (members, recharges, consumptions, refunds, service records): filters,
sorting, pagination and CSV / Excel export of exactly the filtered rows, scoped like the rest."""
