"""Shop connectors (店铺连接器): orders pulled from and pushed by the shop platforms.

A connector is a named link to one shop on one platform (its *kind*: ``shopify``,
``woocommerce``, ``youzan``, ``taobao``, ``wechat_shop``, ``jd``). Its name is the ``source`` of the orders it
brings, so an order is ``(connector name, platform order id)``. The context holds

- the pure pieces: the platforms' order shapes mapped to order events
  (:mod:`~huitouke.connectors.shopify`, :mod:`~huitouke.connectors.woocommerce`,
  :mod:`~huitouke.connectors.youzan`, :mod:`~huitouke.connectors.taobao`,
  :mod:`~huitouke.connectors.wechat_shop`, :mod:`~huitouke.connectors.jd`), webhook
  signatures (:mod:`~huitouke.connectors.signatures`), the shared vocabulary
  (:mod:`~huitouke.connectors.model`);
- the I/O: the platforms' HTTP APIs with their paging and rate limits
  (:mod:`~huitouke.connectors.http`, :mod:`~huitouke.connectors.pull`,
  :mod:`~huitouke.connectors.youzan_pull`, :mod:`~huitouke.connectors.taobao_pull`,
  :mod:`~huitouke.connectors.wechat_shop_pull`, :mod:`~huitouke.connectors.jd_pull`), the tables
  (connectors, sync cursors, the raw inbox) and their statements
  (:mod:`~huitouke.connectors.tables`, :mod:`~huitouke.connectors.repo`).

Recording the orders is the application layer's (``huitouke.app.connectors``), which
hands the mapped events to the same ``record_order_events`` every door uses.
"""
