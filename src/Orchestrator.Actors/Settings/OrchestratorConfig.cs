using Akka.Configuration;
using Microsoft.Data.Sqlite;

namespace Orchestrator.Actors.Settings;

/// <summary>Builds the node's HOCON: defaults, the store overlay, the operator's files, then what the node computes.</summary>
public static class OrchestratorConfig
{
    public static string ConfigDirectory => Path.Combine(AppContext.BaseDirectory, "config");

    /// <param name="files">the operator's --config files; later ones win.</param>
    /// <param name="overrides">HOCON text that wins over every file (the node's command-line flags).</param>
    public static Config Load(IReadOnlyList<string> files, string? overrides = null)
    {
        var config = Parse(Path.Combine(ConfigDirectory, "orchestrator.conf"));
        config = Parse(Path.Combine(ConfigDirectory, "persistence-sqlite.conf")).WithFallback(config);
        foreach (var file in files)
        {
            config = Parse(file).WithFallback(config);
        }

        if (!string.IsNullOrWhiteSpace(overrides))
        {
            config = ConfigurationFactory.ParseString(overrides).WithFallback(config);
        }

        // The SQL plugin's reference config (plugin classes, table layout) is not loaded by Akka on its own.
        return config.WithFallback(Akka.Persistence.Sql.SqlPersistence.DefaultConfiguration);
    }

    /// <summary>What the node fills in at start: the store's connection, the cluster roles and address.</summary>
    public static Config Complete(Config config, string dataDir, IEnumerable<string> roles)
    {
        var quoted = Quote(StoreConnectionString(config, dataDir));
        var computed = $$"""
            akka.persistence.journal.sql.connection-string = {{quoted}}
            akka.persistence.snapshot-store.sql.connection-string = {{quoted}}
            akka.persistence.query.journal.sql.connection-string = {{quoted}}
            akka.cluster.roles = [{{string.Join(", ", roles.Select(Quote))}}]
            akka.remote.dot-netty.tcp.hostname = {{Quote(config.GetString("orchestrator.cluster.hostname", "127.0.0.1"))}}
            akka.remote.dot-netty.tcp.port = {{config.GetInt("orchestrator.cluster.port", 0)}}
            """;
        return ConfigurationFactory.ParseString(computed).WithFallback(config);
    }

    /// <summary>
    /// SQLite: a file in the data dir (the node readies it with <see cref="Persistence.SqliteStoreFile.Prepare"/>).
    /// PostgreSQL: $ORCHESTRATOR_POSTGRES, else the config's.
    /// </summary>
    public static string StoreConnectionString(Config config, string dataDir)
    {
        switch (config.GetString("orchestrator.persistence.provider", "sqlite"))
        {
            case "sqlite":
                var sqliteFile = config.GetString("orchestrator.persistence.sqlite-file", "");
                if (string.IsNullOrEmpty(sqliteFile))
                {
                    sqliteFile = Path.Combine(dataDir, "orchestrator.db");
                }

                // Private cache: in shared-cache mode the plugins' connections share table locks, so a long read by an event
                // stream held the snapshot store's write (and with it the file's write lock) past the journal's 10 s
                // call timeout: a persist failed and the scheduler restarted, more often as the journal grew. Each
                // connection on its own, WAL lets readers and the one writer run side by side.
                return new SqliteConnectionStringBuilder { DataSource = sqliteFile, Cache = SqliteCacheMode.Private }.ToString();
            case "postgres":
                var postgres = Environment.GetEnvironmentVariable("ORCHESTRATOR_POSTGRES") is { Length: > 0 } fromEnvironment
                    ? fromEnvironment
                    : config.GetString("orchestrator.persistence.postgres-connection", "");
                return string.IsNullOrWhiteSpace(postgres)
                    ? throw new ConfigurationException(
                        "orchestrator.persistence.provider is postgres but no connection string is given: set ORCHESTRATOR_POSTGRES")
                    : postgres;
            case var other:
                throw new ConfigurationException($"orchestrator.persistence.provider: unknown '{other}' (known: sqlite, postgres)");
        }
    }

    private static Config Parse(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"configuration file not found: {path}", path);
        }

        try
        {
            return ConfigurationFactory.ParseString(File.ReadAllText(path));
        }
        catch (Exception ex) when (ex is not FileNotFoundException)
        {
            throw new ConfigurationException($"{path}: {ex.Message}");
        }
    }

    public static string Quote(string value) =>
        "\"" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";
}
