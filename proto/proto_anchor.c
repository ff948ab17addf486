/* Keeps curve_proto a valid library while proto/ holds no .proto file. */
int curve_proto__anchor(void);
int curve_proto__anchor(void) { return 0; }
