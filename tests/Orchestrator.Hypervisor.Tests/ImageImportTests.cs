// Safe image import against real qemu-img: hostile images built here are each refused, and leave nothing behind.
using System.Security.Cryptography;
using Orchestrator.Hypervisor.Storage;

namespace Orchestrator.Hypervisor.Tests;

public sealed class ImageImportTests
{
    private const long MaxBytes = 64L << 20;
    private const long MaxVirtual = 2L << 30;

    private static async Task<string> QemuImgCreateAsync(TempDir dir, string name, params string[] arguments)
    {
        var path = Path.Combine(dir.Path, name);
        await QemuImg.RunAsync(["create", "-q", .. arguments[..^1], path, arguments[^1]], $"make the test image {name}", CancellationToken.None);
        return path;
    }

    private static async Task<ImageRefusedException> RefusedAsync(TempDir dir, string source, string format)
    {
        var pool = Path.Combine(dir.Path, "pool");
        await using var stream = File.OpenRead(source);
        var refused = await Assert.ThrowsAsync<ImageRefusedException>(() =>
            ImageImport.ImportAsync(stream, format, Path.Combine(pool, "image." + format), MaxBytes, MaxVirtual, CancellationToken.None));
        Assert.Empty(Directory.EnumerateFileSystemEntries(pool)); // nothing of it is left in the pool
        return refused;
    }

    [QemuFact]
    public async Task A_qcow2_with_a_backing_file_pointing_at_a_host_file_is_refused()
    {
        using var dir = new TempDir();
        var hostile = await QemuImgCreateAsync(dir, "backed.qcow2", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", "1G");

        var refused = await RefusedAsync(dir, hostile, "qcow2");
        Assert.Contains("backing file ('/etc/passwd')", refused.Message);
    }

    [QemuFact]
    public async Task A_qcow2_with_an_external_data_file_is_refused()
    {
        using var dir = new TempDir();
        var hostile = await QemuImgCreateAsync(dir, "data.qcow2", "-f", "qcow2", "-o", $"data_file={Path.Combine(dir.Path, "outside.raw")}", "64M");

        var refused = await RefusedAsync(dir, hostile, "qcow2");
        Assert.Contains("external data file", refused.Message);
    }

    [QemuFact]
    public async Task A_format_that_is_not_what_was_declared_is_refused_either_way()
    {
        using var dir = new TempDir();
        var qcow2 = await QemuImgCreateAsync(dir, "real.qcow2", "-f", "qcow2", "64M");
        var raw = Path.Combine(dir.Path, "real.raw");
        await File.WriteAllBytesAsync(raw, new byte[1 << 20]);

        Assert.Contains("declared raw but is a qcow2", (await RefusedAsync(dir, qcow2, "raw")).Message);
        Assert.Contains("declared qcow2 but is not a qcow2", (await RefusedAsync(dir, raw, "qcow2")).Message);
        Assert.Equal("format", (await Assert.ThrowsAsync<ImageRefusedException>(() =>
            ImageImport.ImportAsync(Stream.Null, "vmdk", Path.Combine(dir.Path, "x"), MaxBytes, MaxVirtual, CancellationToken.None))).Field);
    }

    [QemuFact]
    public async Task An_image_over_the_virtual_size_limit_or_the_upload_cap_is_refused()
    {
        using var dir = new TempDir();
        var huge = await QemuImgCreateAsync(dir, "huge.qcow2", "-f", "qcow2", "100G"); // a few hundred KiB on disk

        Assert.Contains("virtual size", (await RefusedAsync(dir, huge, "qcow2")).Message);

        var big = Path.Combine(dir.Path, "big.raw");
        await using (var file = File.Create(big))
        {
            file.SetLength(MaxBytes + 1);
        }

        Assert.Contains("larger than", (await RefusedAsync(dir, big, "raw")).Message);
    }

    [QemuFact]
    public async Task A_plain_image_is_accepted_with_its_sha256_and_its_sizes()
    {
        using var dir = new TempDir();
        var good = await QemuImgCreateAsync(dir, "good.qcow2", "-f", "qcow2", "1G");
        var expected = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(good)));
        var destination = Path.Combine(dir.Path, "pool", "images", "img1.qcow2");

        await using var stream = File.OpenRead(good);
        var imported = await ImageImport.ImportAsync(stream, "qcow2", destination, MaxBytes, MaxVirtual, CancellationToken.None);

        Assert.Equal(new ImportedImage(destination, "qcow2", expected, new FileInfo(good).Length, 1L << 30), imported);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(destination));
        Assert.Single(Directory.EnumerateFileSystemEntries(Path.GetDirectoryName(destination)!)); // no partial left beside it
    }
}
