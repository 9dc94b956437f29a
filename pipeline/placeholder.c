int qes__pipeline_placeholder(void); int qes__pipeline_placeholder(void) { return 0; }
