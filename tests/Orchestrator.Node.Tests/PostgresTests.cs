using System.Net;
using System.Net.Http.Json;
using Orchestrator.Tools.Bench;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>The node on a real PostgreSQL server: the store for clusters spread over machines.</summary>
[Collection(NodeCollection.Name)]
public sealed class PostgresTests(ITestOutputHelper output) : IAsyncLifetime
{
    private PostgresServer _postgres = null!;
    private NodeProcess _node = null!;

    public async Task InitializeAsync()
    {
        _postgres = await PostgresServer.StartAsync();
        _node = await NodeProcess.StartAsync(output, $"""orchestrator.persistence.postgres-connection = "{_postgres.ConnectionString}" """,
            extraArgs: ["--config", Path.Combine(Checkout.Root(), "config", "persistence-postgres.conf")]);
    }

    public async Task DisposeAsync()
    {
        await _node.DisposeAsync();
        await _postgres.DisposeAsync();
    }

    [Fact]
    public async Task A_node_on_postgres_keeps_its_vms_across_a_restart()
    {
        await _node.CreateVmAsync("pg1");
        var ready = await _node.WaitForVmAsync("pg1", "Ready");

        await _node.StopAsync();
        await _node.StartAgainAsync();
        var adopted = await _node.WaitForVmAsync("pg1", "Ready");
        Assert.Equal((string)ready["id"]!, (string)adopted["id"]!);
        Assert.Equal((int)ready["pid"]!, (int)adopted["pid"]!);
    }

    [Fact]
    public async Task A_host_whose_lease_is_revoked_kills_its_vms_at_once()
    {
        await _node.CreateVmAsync("leased");
        var vm = await _node.WaitForVmAsync("leased", "Ready");

        // What the scheduler does before it moves a lost host's VMs elsewhere.
        await using (var connection = new Npgsql.NpgsqlConnection(_postgres.ConnectionString))
        {
            await connection.OpenAsync();
            await using var revoke = new Npgsql.NpgsqlCommand("UPDATE orchestrator_host_leases SET revoked = true", connection);
            Assert.Equal(1, await revoke.ExecuteNonQueryAsync());
        }

        var pid = (int)vm["pid"]!;
        await _node.Eventually(() => Task.FromResult<bool?>(!Orchestrator.Tools.Bench.ProcessTable.IsAlive(pid)),
            TimeSpan.FromSeconds(20), "the VM of a host whose lease was revoked to die");
        // The guard kills the VM the moment the node tells it to, possibly before the node's log line is written out.
        await _node.Eventually(() => Task.FromResult<bool?>(_node.Log.Contains("lease was revoked", StringComparison.Ordinal) ? true : null),
            TimeSpan.FromSeconds(20), "the node to log why it killed its VMs");
    }

    [Fact]
    public async Task When_postgres_goes_away_writes_fail_clearly_and_nothing_acknowledged_is_lost()
    {
        await _node.CreateVmAsync("before");
        await _node.WaitForVmAsync("before", "Ready");

        _postgres.Stop();
        var during = await _node.Http.PostAsJsonAsync("v1/vms", new { name = "during", vcpus = 1, memoryMiB = 256, image = "demo" });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, during.StatusCode);
        Assert.Contains("scheduler", await during.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await _node.Http.GetAsync("healthz")).StatusCode);

        _postgres.Start();
        await _node.Eventually(async () =>
            (await _node.Http.PostAsJsonAsync("v1/vms", new { name = "after", vcpus = 1, memoryMiB = 256, image = "demo" })).StatusCode
                is HttpStatusCode.Created or HttpStatusCode.Conflict ? true : (bool?)null,
            TimeSpan.FromSeconds(90), "writes to work again");
        await _node.WaitForVmAsync("after", "Ready");
        Assert.Equal("Ready", (string?)(await _node.GetVmAsync("before"))!["state"]);
    }
}
