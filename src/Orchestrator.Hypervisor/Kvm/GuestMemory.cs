// Guest RAM: one anonymous mapping that becomes guest-physical [0, Size). Every access is bounds-checked, so a bad
// address from a boot layout or a device is an exception, never a write outside the mapping.
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Orchestrator.Hypervisor.Kvm;

public sealed class GuestMemory : IDisposable
{
    private readonly MappedMemory _region;

    public GuestMemory(ulong size)
    {
        Size = size;
        _region = MappedMemory.MapAnonymous(size);
    }

    /// <summary>Bytes of guest-physical memory, starting at address 0.</summary>
    public ulong Size { get; }

    internal MappedMemory Region => _region;

    public unsafe void Write(ulong address, ReadOnlySpan<byte> data)
    {
        var pointer = Acquire(address, (ulong)data.Length);
        try
        {
            // Safe: Acquire checked the range and holds the mapping until Release.
            data.CopyTo(new Span<byte>(pointer, data.Length));
        }
        finally
        {
            Release();
        }
    }

    public unsafe void Read(ulong address, Span<byte> destination)
    {
        var pointer = Acquire(address, (ulong)destination.Length);
        try
        {
            // Safe: as Write.
            new ReadOnlySpan<byte>(pointer, destination.Length).CopyTo(destination);
        }
        finally
        {
            Release();
        }
    }

    public byte[] Read(ulong address, int length)
    {
        var bytes = new byte[length];
        Read(address, bytes);
        return bytes;
    }

    public unsafe void Clear(ulong address, ulong length)
    {
        var pointer = Acquire(address, length);
        try
        {
            // Safe: as Write.
            NativeMemory.Clear(pointer, (nuint)length);
        }
        finally
        {
            Release();
        }
    }

    public ulong ReadUInt64(ulong address)
    {
        Span<byte> bytes = stackalloc byte[8];
        Read(address, bytes);
        return BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    public void WriteUInt64(ulong address, ulong value)
    {
        Span<byte> bytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, value);
        Write(address, bytes);
    }

    /// <summary>Copies a file's bytes [offset, offset+length) to guest memory at <paramref name="address"/> without a managed copy.</summary>
    public unsafe void LoadFile(string path, long offset, ulong length, ulong address)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        if (offset < 0 || offset + (long)length > file.Length)
        {
            throw new HypervisorException($"{path} is {file.Length} bytes, shorter than the {length} bytes at {offset} to load");
        }

        file.Position = offset;
        var pointer = Acquire(address, length);
        try
        {
            for (ulong done = 0; done < length;)
            {
                var chunk = (int)Math.Min(length - done, 1 << 24);
                // Safe: as Write; each chunk lies inside the acquired range.
                file.ReadExactly(new Span<byte>(pointer + done, chunk));
                done += (ulong)chunk;
            }
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// Bytes of this mapping resident in host RAM (mincore), to tell guest pages from the VMM's own in RSS figures.
    /// </summary>
    public unsafe ulong ResidentBytes()
    {
        var page = (ulong)Environment.SystemPageSize;
        var pages = (Size + page - 1) / page;
        var vector = new byte[pages];
        var added = false;
        try
        {
            _region.DangerousAddRef(ref added);
            // Safe: the vector has one byte per page of the mapping, which mincore fills and nothing else.
            fixed (byte* v = vector)
            {
                if (LibC.Mincore(_region.DangerousGetHandle(), (nuint)Size, v) != 0)
                {
                    throw new HypervisorException($"mincore failed: {LibC.Describe(Marshal.GetLastPInvokeError())}");
                }
            }
        }
        finally
        {
            if (added)
            {
                _region.DangerousRelease();
            }
        }

        ulong resident = 0;
        foreach (var b in vector)
        {
            resident += (ulong)(b & 1);
        }

        return resident * page;
    }

    public void Dispose() => _region.Dispose();

    private void CheckRange(ulong address, ulong length)
    {
        if (address > Size || length > Size - address)
        {
            throw new ArgumentOutOfRangeException(
                nameof(address), $"guest range 0x{address:x}+0x{length:x} is outside guest memory [0, 0x{Size:x})");
        }
    }

    /// <summary>Checks the range and pins the mapping (no munmap until <see cref="Release"/>); returns the range's host address.</summary>
    private unsafe byte* Acquire(ulong address, ulong length)
    {
        CheckRange(address, length);
        byte* pointer = null;
        _region.AcquirePointer(ref pointer);
        return pointer + address;
    }

    private void Release() => _region.ReleasePointer();
}
