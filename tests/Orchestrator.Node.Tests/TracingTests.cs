using System.Net;
using System.Text;
using Orchestrator.Tests.Shared;
using Xunit.Abstractions;

namespace Orchestrator.Node.Tests;

/// <summary>A real node exporting its traces over OTLP/HTTP to a receiver in the test, while a real guest boots.</summary>
[Collection(NodeCollection.Name)]
public sealed class TracingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_trace_of_a_create_has_spans_from_the_api_the_scheduler_and_the_host_until_the_guest_is_ready()
    {
        using var collector = new LoopbackReceiver(HttpStatusCode.OK);
        var endpoint = new Uri(collector.Url).GetLeftPart(UriPartial.Authority);
        await using var node = await NodeProcess.StartAsync(output, extraConfig: $"orchestrator.telemetry.otlp-endpoint = \"{endpoint}\"\n");
        var tenantKey = await node.TenantKeyAsync("traced");
        using var tenant = node.ClientWith(tenantKey);
        var created = await tenant.PostAsync("v1/vms",
            new StringContent("""{"name":"typed-name-41","vcpus":1,"memoryMiB":128,"image":"demo"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var vmId = System.Text.Json.Nodes.JsonNode.Parse(await created.Content.ReadAsStringAsync())!["id"]!.ToString();

        // Spans leave in batches, each when it ends: the last one, vm.boot, ends at the guest's ready banner.
        var spans = await node.Eventually(() =>
        {
            var all = collector.Received.SelectMany(post => OtlpSpans.Read(post.Body)).ToList();
            return Task.FromResult(all.Any(s => s.Name == "vm.boot") ? all : null);
        }, TimeSpan.FromSeconds(120), "the vm.boot span at the collector");
        foreach (var span in spans)
        {
            output.WriteLine($"{span.Name}: trace {span.TraceId} span {span.SpanId} parent {span.ParentSpanId}");
        }

        var api = Assert.Single(spans, s => s.Name == "POST /v1/vms");
        var decide = Assert.Single(spans, s => s.Name == "scheduler.decide");
        var persist = Assert.Single(spans, s => s.Name == "scheduler.persist");
        var host = Assert.Single(spans, s => s.Name == "host.start");
        var boot = Assert.Single(spans, s => s.Name == "vm.boot");
        Assert.All(new[] { decide, persist, host, boot }, s => Assert.Equal(api.TraceId, s.TraceId));
        Assert.Equal(api.SpanId, decide.ParentSpanId);
        Assert.Equal(api.SpanId, persist.ParentSpanId);
        Assert.Equal(persist.SpanId, host.ParentSpanId);
        Assert.Equal(host.SpanId, boot.ParentSpanId);
        Assert.True(boot.EndUnixNanos > api.StartUnixNanos, "vm.boot ends after the request began");
        Assert.All(new[] { api, decide, persist, host, boot }, s => Assert.Equal(vmId, s.Attribute("orchestrator.vm.id")));
        Assert.Equal("traced", decide.Attribute("orchestrator.tenant.id"));
        // Ids only: the name the tenant typed is in no span.
        Assert.DoesNotContain(collector.Received, post => Encoding.UTF8.GetString(post.Body).Contains("typed-name-41", StringComparison.Ordinal));
    }
}

/// <summary>
/// Just enough of OTLP's protobuf (ExportTraceServiceRequest → ResourceSpans → ScopeSpans → Span) to read span names,
/// ids, times and string attributes; every other field is skipped by its wire type.
/// </summary>
internal sealed record OtlpSpan(string Name, string TraceId, string SpanId, string ParentSpanId, ulong StartUnixNanos, ulong EndUnixNanos,
    IReadOnlyDictionary<string, string> Attributes)
{
    public string? Attribute(string key) => Attributes.GetValueOrDefault(key);
}

internal static class OtlpSpans
{
    public static IEnumerable<OtlpSpan> Read(byte[] request) =>
        Fields(request).Where(f => f.Number == 1).SelectMany(resourceSpans =>
            Fields(resourceSpans.Bytes).Where(f => f.Number == 2).SelectMany(scopeSpans =>
                Fields(scopeSpans.Bytes).Where(f => f.Number == 2).Select(span => Span(span.Bytes)))).ToList();

    private static OtlpSpan Span(byte[] bytes)
    {
        string name = "", traceId = "", spanId = "", parent = "";
        ulong start = 0, end = 0;
        var attributes = new Dictionary<string, string>();
        foreach (var field in Fields(bytes))
        {
            switch (field.Number)
            {
                case 1: traceId = Convert.ToHexStringLower(field.Bytes); break;
                case 2: spanId = Convert.ToHexStringLower(field.Bytes); break;
                case 4: parent = Convert.ToHexStringLower(field.Bytes); break;
                case 5: name = Encoding.UTF8.GetString(field.Bytes); break;
                case 7: start = field.Value; break;
                case 8: end = field.Value; break;
                case 9:
                    var key = Fields(field.Bytes).FirstOrDefault(f => f.Number == 1);
                    var value = Fields(field.Bytes).FirstOrDefault(f => f.Number == 2);
                    var text = value.Bytes is null ? null : Fields(value.Bytes).FirstOrDefault(f => f.Number == 1).Bytes; // AnyValue.string_value
                    if (key.Bytes is not null && text is not null)
                    {
                        attributes[Encoding.UTF8.GetString(key.Bytes)] = Encoding.UTF8.GetString(text);
                    }

                    break;
            }
        }

        return new OtlpSpan(name, traceId, spanId, parent, start, end, attributes);
    }

    /// <summary>One field: its number, and its bytes (length-delimited) or value (varint, fixed64, fixed32).</summary>
    private readonly record struct Field(int Number, byte[] Bytes, ulong Value);

    private static List<Field> Fields(byte[] message)
    {
        var fields = new List<Field>();
        var at = 0;
        while (at < message.Length)
        {
            var tag = Varint(message, ref at);
            var number = (int)(tag >> 3);
            switch (tag & 7)
            {
                case 0:
                    fields.Add(new Field(number, null!, Varint(message, ref at)));
                    break;
                case 1:
                    fields.Add(new Field(number, null!, BitConverter.ToUInt64(message, at)));
                    at += 8;
                    break;
                case 2:
                    var length = (int)Varint(message, ref at);
                    fields.Add(new Field(number, message[at..(at + length)], 0));
                    at += length;
                    break;
                case 5:
                    fields.Add(new Field(number, null!, BitConverter.ToUInt32(message, at)));
                    at += 4;
                    break;
                default:
                    throw new FormatException($"protobuf wire type {tag & 7} at byte {at}");
            }
        }

        return fields;
    }

    private static ulong Varint(byte[] message, ref int at)
    {
        ulong value = 0;
        for (var shift = 0; ; shift += 7)
        {
            var b = message[at++];
            value |= (ulong)(b & 0x7f) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }
    }
}
