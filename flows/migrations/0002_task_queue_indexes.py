"""Indexes for the portal's task queues on viewflow's task table, which has none on the columns they filter by
(docs/LIBRARY_NOTES: viewflow_task has no index on flow_task, flow_task_type, owner_permission).

- The queue (flows.selectors.task_queue_for): open tasks offered by a permission on given stores, oldest
  first: (owner_permission, owner_permission_obj_pk, status, created, id). A store's page of the queue is read
  in index order (the queue's order: created, id) and stops after the page, whatever the number of tasks.
- The tasks of one node (flows.selectors._flow_tasks names the flows' human nodes): (flow_task, status).

Plain CREATE INDEX on both PostgreSQL and SQLite; viewflow's models are not ours to add Meta indexes to.
"""

from django.db import migrations

INDEXES = {
    "flows_task_queue_idx": "viewflow_task (owner_permission, owner_permission_obj_pk, status, created, id)",
    "flows_task_node_idx": "viewflow_task (flow_task, status)",
}


class Migration(migrations.Migration):
    dependencies = [
        ("flows", "0001_initial"),
        ("viewflow", "0015_task_scheduled"),
    ]

    operations = [
        migrations.RunSQL(f"CREATE INDEX IF NOT EXISTS {name} ON {target}", f"DROP INDEX IF EXISTS {name}")
        for name, target in INDEXES.items()
    ]
