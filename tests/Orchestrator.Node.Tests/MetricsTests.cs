using System.Net;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>GET /metrics on a real node: what a create, a boot and the API leave in Prometheus's format, and who may read it.</summary>
[Collection(NodeCollection.Name)]
public sealed class MetricsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private NodeProcess _node = null!;

    public async Task InitializeAsync() => _node = await NodeProcess.StartAsync(output);

    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task A_boot_shows_in_the_operators_metrics_by_ids_only_and_tenants_cannot_read_them()
    {
        var tenantKey = await _node.TenantKeyAsync("metered");
        using var tenant = _node.ClientWith(tenantKey);
        Assert.Equal(HttpStatusCode.Created, (await tenant.PostAsync("v1/vms", Json("""{"name":"secret-name-7","vcpus":1,"memoryMiB":128,"image":"demo"}"""))).StatusCode);

        // The series come from the scheduler's state as persisted: wait for the VM to boot and show there as ready.
        var text = "";
        await _node.Eventually(async () =>
        {
            text = await _node.Http.GetStringAsync("metrics");
            return Series(text, "orchestrator_vms", "state=\"Ready\"", "tenant=\"metered\"") == 1
                   && Series(text, "orchestrator_vm_cpu", "kind=\"demand\"") >= 0 ? true : (bool?)null;
        }, TimeSpan.FromSeconds(90), "the ready VM in orchestrator_vms, and its host's CPU window in orchestrator_vm_cpu");
        output.WriteLine(text);

        Assert.Equal(1, Series(text, "orchestrator_vm_create_to_ready_duration_seconds_count"));
        Assert.True(Series(text, "orchestrator_scheduler_decision_duration_seconds_count") >= 2); // the tenant, the VM
        Assert.True(Series(text, "orchestrator_journal_write_duration_seconds_count") >= 2);
        Assert.True(Series(text, "orchestrator_journal_batch_size_count") >= 1);
        Assert.True(Series(text, "orchestrator_api_requests_total", "route=\"/v1/vms\"", "method=\"POST\"", "status=\"201\"") >= 1);
        Assert.Equal(1, Series(text, "orchestrator_hosts", "state=\"Up\""));
        Assert.True(Series(text, "orchestrator_host_vcpus", "kind=\"allocated\"") >= 1);
        // Routes by template, tenants by id: the tenant's own names never become series.
        Assert.DoesNotContain("secret-name-7", text);

        Assert.Equal(HttpStatusCode.Forbidden, (await tenant.GetAsync("metrics")).StatusCode);
        using var anonymous = _node.ClientWith(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("metrics")).StatusCode);
    }

    /// <summary>The value of the one sample of <paramref name="name"/> carrying every label given; NaN when none does.</summary>
    private static double Series(string text, string name, params string[] labels)
    {
        var values = text.Split('\n')
            .Where(line => line.StartsWith(name + "{", StringComparison.Ordinal) || line.StartsWith(name + " ", StringComparison.Ordinal))
            .Where(line => labels.All(label => line.Contains(label, StringComparison.Ordinal)))
            .Select(line => double.Parse(Regex.Match(line, @"\s(\S+)(\s\d+)?$").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        return values.Count == 1 ? values[0] : values.Count == 0 ? double.NaN : values.Sum();
    }

    private static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");
}
