using Npgsql;

namespace Orchestrator.Simulation;

/// <summary>
/// A PostgreSQL database of the benchmark's own on the server $ORCHESTRATOR_POSTGRES names (as a node finds it), so
/// the scheduler starts from an empty journal and nothing of the operator's is touched; dropped at the end.
/// </summary>
internal sealed class BenchDatabase : IAsyncDisposable
{
    private readonly string _server;

    private BenchDatabase(string server, string name)
    {
        _server = server;
        Name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(server) { Database = name }.ConnectionString;
    }

    public string Name { get; }

    public string ConnectionString { get; }

    public static async Task<BenchDatabase> CreateAsync(CancellationToken ct)
    {
        var server = Environment.GetEnvironmentVariable("ORCHESTRATOR_POSTGRES");
        if (string.IsNullOrWhiteSpace(server))
        {
            throw new InvalidOperationException(
                "--store postgres: set ORCHESTRATOR_POSTGRES to a connection string of a server where this user may create databases");
        }

        // Generated here, never taken from input: safe to put in the statement.
        var database = new BenchDatabase(server, $"orchestrator_bench_{Guid.NewGuid():N}"[..32]);
        await database.ExecuteAsync($"CREATE DATABASE {database.Name}", ct);
        return database;
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await ExecuteAsync($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", CancellationToken.None);
    }

    private async Task ExecuteAsync(string statement, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(_server);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand(statement, connection);
        await command.ExecuteNonQueryAsync(ct);
    }
}
