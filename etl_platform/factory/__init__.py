"""④ One pipeline's spec -> its slice of definitions: the load asset and its checks, the transforms,
the job and schedule, what a load reports."""
