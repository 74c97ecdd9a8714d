from etl_platform.components.alerts import Alerts as Alerts
from etl_platform.components.connections import Connections as Connections
from etl_platform.components.pipeline import Pipeline as Pipeline
