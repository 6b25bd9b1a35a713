-- Rows here fail the test: the view's answers, as PostgreSQL gives them.
select customer, total, orders from {{ ref('customer_totals') }}
where (customer = 'ann' and (total <> 12 or orders <> 2))
   or (customer = 'bob' and (total <> 3 or orders <> 1))
   or (customer = 'cy' and (total <> 7.25 or orders <> 1))
   or customer not in ('ann', 'bob', 'cy')
union all
select 'count', count(*), 0 from {{ ref('orders_incremental') }} having count(*) <> 4
union all
select 'big', count(*), 0 from {{ ref('big_orders') }} having count(*) <> 3
