-- An incremental model with a unique key: a second run deletes the rows
-- it replaces, then inserts them.
{{ config(materialized='incremental', unique_key='id') }}
select id, customer, amount, ordered_at from {{ ref('orders') }}
{% if is_incremental() %}
where ordered_at >= (select max(ordered_at) from {{ this }})
{% endif %}
