package jianglian;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Runs Neo4j Community 5.26 embedded with a Bolt connector, for Jianglian development and tests.
 *
 * <p>Usage: {@code Neo4jLauncher [--port N] [--host ADDR] [--db-timeout SECONDS] [--ignore-stdin]
 * [--conf key=value]... DATA_DIR}
 *
 * <p>Bolt listens on {@code host:port} (default {@code 127.0.0.1:7687}); HTTP/HTTPS are off, authentication is
 * off. {@code DATA_DIR} becomes the Neo4j home: databases and transaction logs go to {@code DATA_DIR/data}, the
 * debug log to {@code DATA_DIR/logs}. Once the default database {@code neo4j} is available, exactly one line
 * {@code JIANGLIAN-NEO4J READY bolt://HOST:PORT} is printed on standard output. The server stops cleanly when
 * standard input reaches end-of-file (the parent closed the pipe) or on SIGINT/SIGTERM. With {@code
 * --ignore-stdin} only a signal stops it. Neo4j's user log goes to standard error. Exit codes: 0 clean stop after
 * end-of-file, 1 start failure (the last line on standard error says why), 2 bad arguments; after a signal the
 * JVM's own 130/143, once the shutdown hook has stopped Neo4j cleanly.
 *
 * <p>The heap is bounded by the caller ({@code -Xmx}); {@code dbms.memory.transaction.total.max} defaults to
 * half of it. Any Neo4j setting can be overridden with {@code --conf key=value}.
 */
public final class Neo4jLauncher {
    /** Prefix of the single line that tells the parent process the server accepts Bolt connections. */
    public static final String READY_PREFIX = "JIANGLIAN-NEO4J READY ";

    private static final String DEFAULT_DATABASE = "neo4j";
    private static final Object LOCK = new Object();
    private static DatabaseManagementService service;
    private static boolean stopped;

    private Neo4jLauncher() {}

    public static void main(String[] args) {
        String host = "127.0.0.1";
        int port = 7687;
        long dbTimeoutSeconds = 120;
        boolean ignoreStdin = false;
        Path dataDir = null;
        Map<String, String> overrides = new LinkedHashMap<>();
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                switch (a) {
                    case "--port" -> port = Integer.parseInt(value(args, ++i, a));
                    case "--host" -> host = value(args, ++i, a);
                    case "--db-timeout" -> dbTimeoutSeconds = Long.parseLong(value(args, ++i, a));
                    case "--ignore-stdin" -> ignoreStdin = true;
                    case "--conf" -> {
                        String kv = value(args, ++i, a);
                        int eq = kv.indexOf('=');
                        if (eq <= 0) {
                            throw new IllegalArgumentException("--conf expects key=value, got " + kv);
                        }
                        overrides.put(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
                    }
                    case "-h", "--help" -> {
                        System.out.println("usage: Neo4jLauncher [--port N] [--host ADDR] [--db-timeout SECONDS]"
                                + " [--ignore-stdin] [--conf key=value]... DATA_DIR");
                        return;
                    }
                    default -> {
                        if (a.startsWith("--") || dataDir != null) {
                            throw new IllegalArgumentException("unexpected argument " + a);
                        }
                        dataDir = Path.of(a);
                    }
                }
            }
            if (dataDir == null) {
                throw new IllegalArgumentException("DATA_DIR is required");
            }
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("bad port " + port);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("Neo4jLauncher: " + e.getMessage());
            System.exit(2);
            return;
        }

        Map<String, String> config = settings(host, port);
        config.putAll(overrides);
        try {
            Files.createDirectories(dataDir);
            start(dataDir.toAbsolutePath().normalize(), config, dbTimeoutSeconds * 1000);
        } catch (Throwable e) {
            e.printStackTrace();
            stop();
            // Last, so that a parent keeping only the tail of the output sees the reason.
            System.err.println("Neo4jLauncher: start failed: " + causes(e));
            System.exit(1);
            return;
        }
        System.out.println(READY_PREFIX + "bolt://" + host + ":" + port);
        System.out.flush();

        if (ignoreStdin) {
            waitForever();
        } else {
            drain(System.in);
        }
        stop();
        System.exit(0);
    }

    private static String causes(Throwable e) {
        StringBuilder text = new StringBuilder(String.valueOf(e));
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            text.append(" <- caused by ").append(c);
        }
        return text.toString();
    }

    private static String value(String[] args, int i, String option) {
        if (i >= args.length) {
            throw new IllegalArgumentException(option + " needs a value");
        }
        return args[i];
    }

    /** Development defaults: small, quick to start, Bolt only, no auth, no phone-home. */
    private static Map<String, String> settings(String host, int port) {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("server.default_listen_address", host);
        c.put("server.default_advertised_address", host);
        c.put("server.bolt.enabled", "true");
        c.put("server.bolt.listen_address", host + ":" + port);
        c.put("server.bolt.advertised_address", host + ":" + port);
        c.put("server.bolt.tls_level", "DISABLED");
        c.put("server.http.enabled", "false");
        c.put("server.https.enabled", "false");
        c.put("dbms.security.auth_enabled", "false");
        c.put("dbms.usage_report.enabled", "false");
        c.put("server.memory.pagecache.size", "64m");
        long halfHeapMb = Math.max(64, Runtime.getRuntime().maxMemory() / (2L * 1024 * 1024));
        c.put("dbms.memory.transaction.total.max", halfHeapMb + "m");
        c.put("db.tx_log.rotation.retention_policy", "keep_none");
        c.put("db.tx_log.rotation.size", "16m");
        c.put("db.tx_log.preallocate", "false");
        c.put("db.shutdown_transaction_end_timeout", "2s");
        // Bolt waits 5 s + 5 s on shutdown by default (netty quiet period, thread pool): make stopping quick.
        c.put("internal.dbms.bolt.netty_server_shutdown_quiet_period", "0");
        c.put("internal.dbms.bolt.netty_server_shutdown_timeout", "2");
        c.put("internal.server.bolt.thread_pool_shutdown_wait_time", "1s");
        c.put("internal.server.bolt.connection_shutdown_wait_time", "1s");
        return c;
    }

    private static void start(Path home, Map<String, String> config, long dbTimeoutMillis) throws IOException {
        // The builder takes typed settings or a neo4j.conf file: a file keeps every setting a plain string.
        Path conf = Files.createTempFile("jianglian-neo4j-", ".conf");
        DatabaseManagementService s;
        try {
            StringBuilder text = new StringBuilder();
            config.forEach((k, v) -> text.append(k).append('=').append(v).append('\n'));
            Files.writeString(conf, text);
            s = new DatabaseManagementServiceBuilder(home)
                    .loadPropertiesFromFile(conf)
                    .setUserLogProvider(new Log4jLogProvider(System.err, Level.INFO))
                    .build();
        } finally {
            Files.deleteIfExists(conf);
        }
        synchronized (LOCK) {
            service = s;
            if (stopped) {
                throw new IllegalStateException("stopped while starting");
            }
        }
        Runtime.getRuntime().addShutdownHook(new Thread(Neo4jLauncher::stop, "jianglian-neo4j-shutdown"));
        GraphDatabaseService db = s.database(DEFAULT_DATABASE);
        long deadline = System.currentTimeMillis() + dbTimeoutMillis;
        while (!db.isAvailable()) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException(
                        "database " + DEFAULT_DATABASE + " not available after " + dbTimeoutMillis + " ms");
            }
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while waiting for the database", e);
            }
        }
    }

    /** Shuts the DBMS down once; safe to call from the main thread and the shutdown hook. */
    private static void stop() {
        synchronized (LOCK) {
            if (stopped) {
                return;
            }
            stopped = true;
            if (service != null) {
                try {
                    service.shutdown();
                } catch (Throwable e) {
                    System.err.println("Neo4jLauncher: shutdown failed: " + e);
                }
            }
        }
    }

    private static void drain(InputStream in) {
        byte[] buffer = new byte[4096];
        try {
            while (in.read(buffer) >= 0) {
                // Input is ignored: only end-of-file matters.
            }
        } catch (IOException e) {
            // A broken pipe means the parent is gone: stop as for end-of-file.
        }
    }

    private static void waitForever() {
        Object never = new Object();
        synchronized (never) {
            while (true) {
                try {
                    never.wait();
                } catch (InterruptedException e) {
                    return;
                }
            }
        }
    }
}
