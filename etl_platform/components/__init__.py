from etl_platform.components.pipeline import Pipeline as Pipeline
