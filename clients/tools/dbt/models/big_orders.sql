-- A table model: dbt builds it under a temporary name and swaps it in
-- with ALTER TABLE ... RENAME, in a transaction.
{{ config(materialized='table') }}
select id, customer, amount from {{ ref('orders') }} where amount > 2
