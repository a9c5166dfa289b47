# Neo4j 5.26 for development and tests (included by the Makefile). The server is the Java launcher in
# neo4j-launcher/ (Neo4j Community embedded, Bolt only, on 127.0.0.1, no auth); ops/neo4j_server.py starts
# the same launcher with the same JVM flags (neo4j-launcher/jvm.args) for the tests and `jianglian neo4j`.
#
#   make neo4j-build   build neo4j-launcher/target (mvn; only when missing or older than its sources)
#   make neo4j         run a development server in the foreground on 127.0.0.1:$(NEO4J_PORT), data in
#                      $(NEO4J_DATA); Ctrl-C stops it cleanly

NEO4J_LAUNCHER := neo4j-launcher
NEO4J_BUILT := $(NEO4J_LAUNCHER)/target/.jianglian-built
NEO4J_PORT ?= 7687
NEO4J_DATA ?= data/neo4j
NEO4J_HEAP ?= 1g
JAVA ?= java
MVN ?= mvn

.PHONY: neo4j-build neo4j

neo4j-build: $(NEO4J_BUILT)

# The first build downloads Neo4j and its dependencies (~125 MB) into ~/.m2; later builds work offline.
# target/lib is emptied first so that jars of an older dependency set do not stay on the class path.
$(NEO4J_BUILT): $(NEO4J_LAUNCHER)/pom.xml $(NEO4J_LAUNCHER)/src/main/java/jianglian/Neo4jLauncher.java
	@command -v $(MVN) >/dev/null || { echo "Maven is needed to build the Neo4j launcher: apt-get install maven" >&2; exit 1; }
	rm -rf $(NEO4J_LAUNCHER)/target/lib
	$(MVN) -q -B -Dstyle.color=never -f $(NEO4J_LAUNCHER)/pom.xml package
	@date +%FT%T > $@

neo4j: neo4j-build
	@mkdir -p $(NEO4J_DATA)
	$(JAVA) @$(NEO4J_LAUNCHER)/jvm.args -Xmx$(NEO4J_HEAP) -Xms64m -Dfile.encoding=UTF-8 \
		-cp '$(NEO4J_LAUNCHER)/target/classes:$(NEO4J_LAUNCHER)/target/lib/*' jianglian.Neo4jLauncher \
		--host 127.0.0.1 --port $(NEO4J_PORT) --ignore-stdin $(NEO4J_DATA)
